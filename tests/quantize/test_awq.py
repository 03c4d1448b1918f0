"""AWQ and GPTQ round trips on a tiny Gemma 3: llm-compressor (its own environment) writes compressed-tensors
int4, transformers reloads it, generates, and its perplexity is within 10% of the unquantized model's."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from zephyr.quantize.awq import calibration_texts
from zephyr.cache import LLM_COMPRESSOR


def test_calibration_texts_render_conversations(tmp_path):
    path = tmp_path / "cal.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}\n\n'
                    '{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}\n')
    assert calibration_texts(path, "zephyr", "</s>", 10) == ["<|user|>\nHi</s>\n<|assistant|>\nYo</s>\n",
                                                             "<|user|>\n2+2?</s>\n<|assistant|>\n4</s>\n"]
    assert len(calibration_texts(path, "zephyr", "</s>", 1)) == 1
    assert len(calibration_texts(None, "zephyr", "</s>", 8)) == 8  # the shipped demo dialogues by default


def test_broken_calibration_line_is_named(tmp_path):
    from zephyr.errors import DataError

    path = tmp_path / "cal.jsonl"
    path.write_text('{"messages": []}\n{"text": "no messages"}\n')
    with pytest.raises(DataError, match="cal.jsonl:2"):
        calibration_texts(path, "zephyr", "</s>", 10)


def test_default_scheme_and_bad_group_size(capsys):
    from zephyr.quantize.cli import AwqConfig, GptqConfig, main

    # symmetric group 32: on gemma-3-270m group 128 cost 2x the perplexity change (benchmarks/awq_investigation.py)
    assert (AwqConfig().group_size, AwqConfig().symmetric, AwqConfig().ignore) == (32, True, [])
    assert (GptqConfig().group_size, GptqConfig().symmetric, GptqConfig().awq_scaling) == (32, True, False)
    assert not hasattr(AwqConfig(), "awq_scaling")
    assert main(["awq", "no-such-model", "--group_size", "0"]) == 2  # refused before the model is looked up
    assert "--group_size: must be positive, got 0" in capsys.readouterr().err


NOT_SET_UP = ("the llm-compressor environment is not set up: `zephyr quantize awq --setup_only` "
              "(creates ~/.cache/zephyr/engines/llmcompressor-<env hash>)")


@pytest.mark.slow
def test_each_method_runs_its_modifiers():
    """The llm-compressor recipe of every method, built where the worker builds it (the engine's environment);
    the round trips below run two of them end to end, and "awq+gptq" takes GPTQ's path as plain "gptq" does."""
    import subprocess

    from zephyr.quantize.cli import GptqConfig

    if not LLM_COMPRESSOR.ready():
        pytest.skip(NOT_SET_UP)
    assert (GptqConfig().modifiers, GptqConfig(awq_scaling=True).modifiers) == ("gptq", "awq+gptq")
    code = ("import json; from zephyr.quantize.awq_worker import recipe\n"
            "job = {'symmetric': True, 'group_size': 32, 'ignore': ['re:.*down_proj$']}\n"
            "print(json.dumps({m: [[type(x).__name__, sorted(getattr(x, 'ignore', None) or [])] "
            "for x in recipe({**job, 'method': m})] for m in ('awq', 'gptq', 'awq+gptq', 'rtn')}))")
    done = subprocess.run([str(LLM_COMPRESSOR.python()), "-c", code], stdout=subprocess.PIPE, text=True, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    rounding = ["lm_head", "re:.*down_proj$"]
    assert found == {"awq": [["AWQModifier", []], ["QuantizationModifier", rounding]],
                     "gptq": [["GPTQModifier", rounding]],
                     "awq+gptq": [["AWQModifier", []], ["GPTQModifier", rounding]],
                     "rtn": [["QuantizationModifier", rounding]]}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["awq", "awq+gptq"])
def test_round_trip(method, tmp_path_factory, tmp_path, capsys):
    if not LLM_COMPRESSOR.ready():
        pytest.skip(NOT_SET_UP)
    pytest.importorskip("compressed_tensors", reason="compressed-tensors is needed to reload AWQ checkpoints")
    from tests.fixtures.tiny_gemma import tiny_gemma3_real_vocab
    from zephyr.quantize.cli import main

    model = tiny_gemma3_real_vocab(tmp_path_factory.getbasetemp() / "tiny-gemma3-real")
    out = tmp_path / method
    command = ["gptq", "--awq_scaling", "true"] if method == "awq+gptq" else [method]
    # group size 32 (the default) given explicitly: the assertions below check it reached the checkpoint
    keep = "re:.*layers\\.0\\.mlp\\.down_proj$"
    assert main([*command, str(model), "--output_dir", str(out), "--group_size", "32", "--num_samples", "8",
                 "--max_seq_length", "64", "--eval_tokens", "256", "--window", "128", "--ignore", keep]) == 0
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors"
    assert sorted(config["ignore"]) == ["lm_head", "model.layers.0.mlp.down_proj"]  # patterns saved resolved
    with safe_open(out / "model.safetensors", "pt") as tensors:
        names = set(tensors.keys())
    assert "model.layers.0.mlp.down_proj.weight" in names  # kept dense, as --ignore asked
    assert "model.layers.0.mlp.down_proj.weight_packed" not in names
    assert {"model.layers.0.mlp.up_proj.weight_packed", "model.layers.1.mlp.down_proj.weight_packed"} <= names
    weights = config["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (4, 32, True)
    rows = json.loads((out / "quantization.json").read_text())
    assert rows[0]["version"] == f"{method}-w4-g32" and abs(rows[0]["delta_percent"]) < 10.0
    assert "transformers reloaded" in capsys.readouterr().out
