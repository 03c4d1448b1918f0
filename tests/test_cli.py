"""`zephyr <command>`: one dispatcher for every level, and one config namespace per command (no field declared
twice along a config's bases; no command lists fields it does not use)."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from zephyr.cli import COMMANDS, dispatch, main
from zephyr.errors import DataError

# every command's config classes, "module:Class"
CONFIGS = {
    "data": ["zephyr.data.cli:BinarizeArgs", "zephyr.data.cli:FilterArgs", "zephyr.data.cli:DecontaminateArgs",
             "zephyr.data.cli:MixArgs"],
    "sft": ["zephyr.sft.config:SFTConfig"],
    "aif": ["zephyr.aif.cli:AIFConfig"],
    "dpo": ["zephyr.dpo.config:DPOConfig"],
    "run": ["zephyr.pipeline:RunConfig"],
    "generate": ["zephyr.generate:GenerateConfig"],
    "chat": ["zephyr.chat:ChatConfig"],
    "eval": ["zephyr.eval.cli:EvalConfig"],
    "export": ["zephyr.export:ExportConfig"],
    "quantize": ["zephyr.quantize.cli:GgufConfig", "zephyr.quantize.cli:AwqConfig"],
    "serve": ["zephyr.serve.cli:ServeConfig"],
}
LORA = {"use_lora", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"}


def config_class(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def fields(spec: str) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class(spec))}


def test_every_command_is_covered():
    assert set(CONFIGS) == set(COMMANDS)


@pytest.mark.parametrize("spec", [spec for specs in CONFIGS.values() for spec in specs])
def test_no_field_is_declared_in_two_classes(spec):
    cls = config_class(spec)
    declared: dict[str, str] = {}
    for base in cls.__mro__:
        for name in vars(base).get("__annotations__", {}):
            assert name not in declared, f"{cls.__name__}: '{name}' declared in {declared[name]} and {base.__name__}"
            declared[name] = base.__name__
    assert set(declared) == {f.name for f in dataclasses.fields(cls)}


def test_commands_list_only_fields_they_use():
    for spec in ("zephyr.eval.cli:EvalConfig", "zephyr.generate:GenerateConfig", "zephyr.chat:ChatConfig",
                 "zephyr.serve.cli:ServeConfig", "zephyr.aif.cli:AIFConfig"):
        assert not fields(spec) & LORA, spec
    assert LORA <= fields("zephyr.sft.config:SFTConfig") and LORA <= fields("zephyr.dpo.config:DPOConfig")
    assert "max_seq_length" not in fields("zephyr.dpo.config:DPOConfig")
    assert {"max_length", "logit_chunk_size"} <= fields("zephyr.dpo.config:DPOConfig")


def test_one_chunk_field_one_meaning():
    from zephyr.dpo.config import DPOConfig
    from zephyr.sft.config import SFTConfig

    assert SFTConfig().logit_chunk_size == DPOConfig().logit_chunk_size == 0  # 0: from the logit budget
    assert DPOConfig(max_length=300).row_tokens == 600


def test_dispatch_help_unknown_and_user_errors(capsys):
    def fail(argv):
        raise DataError("bad row", "x.jsonl", 3, "messages")

    table = {"greet": (lambda argv: print("hello", *argv), "say hello"), "fail": (fail, "raise a user error")}
    assert dispatch(table, ["--help"], prog="tool") == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tool <command>") and "  greet  say hello" in out and "  fail   raise" in out
    assert dispatch(table, ["greet", "you"], prog="tool") == 0
    assert capsys.readouterr().out == "hello you\n"
    assert dispatch(table, ["gret"], prog="tool") == 2
    assert "tool: unknown command 'gret'; did you mean 'greet'?" in capsys.readouterr().err
    assert dispatch(table, ["fail"], prog="tool") == 2
    assert capsys.readouterr().err == "tool fail: x.jsonl:3: field 'messages': bad row\n"


@pytest.mark.parametrize("argv, listed", [
    ([], ["sft", "dpo", "quantize"]),
    (["data"], ["binarize", "INPUT OUTPUT", "mix", "OUTPUT_DIR"]),
    (["quantize", "--help"], ["gguf", "awq", "[MODEL]"]),
])
def test_every_level_uses_the_dispatcher(argv, listed, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: zephyr") and all(word in out for word in listed)
    assert main([*argv[:1], "nope"] if argv else ["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_command_help_exits_zero_and_lists_fields(capsys):
    assert main(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: zephyr eval [BENCHMARK]") and "--judge_url" in out and "--use_lora" not in out
    assert main(["quantize", "awq", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: zephyr quantize awq [MODEL]")
