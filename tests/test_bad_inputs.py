"""Every command that reads data or settings, run in-process on a shared set of bad inputs: each must exit 2 with
a message naming the file, line and field (data) or the field (settings), with no traceback and before any
model loads (`load_model` is replaced by a tripwire)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import zephyr.models
from zephyr.cli import main as cli

CHAT = {"messages": [{"role": "user", "content": "Question one about colours?"},
                     {"role": "assistant", "content": "Answer one."}]}
PAIR = {"prompt": "Question one about colours?", "chosen": "Red.", "rejected": "No."}
ASPECTS = ("instruction_following", "honesty", "truthfulness", "helpfulness")
RAW = {"instruction": "Question one about colours?",
       "completions": [{"model": "m", "response": r, "overall_score": 2 * int(s),
                        "annotations": {a: {"Rating": s, "Rationale": "."} for a in ASPECTS}}
                       for r, s in (("Red.", "5"), ("No.", "2"))]}
PROMPT = {"messages": [{"role": "user", "content": "Question one about colours?"}]}
EVAL = {"turns": ["An eval question about something else entirely?"]}

# command -> (good row of its input, the field a wrong type or a missing field is reported on)
COMMANDS = {
    "data filter": (CHAT, "messages"),
    "data binarize": (RAW, "completions"),
    "data decontaminate": (CHAT, "messages"),
    "data decontaminate --eval": (EVAL, "turns"),
    "data mix": (CHAT, "messages"),
    "sft": (CHAT, "messages"),
    "dpo": (PAIR, "chosen"),
    "generate": (PROMPT, "messages"),
}
KINDS = ["non_utf8", "duplicate_key", "truncated", "wrong_type", "missing_field", "empty", "folder"]


def bad_file(folder: Path, kind: str, good: dict, key: str) -> Path:
    """bad.jsonl whose line 2 is broken in the way `kind` says (line 1 is a good row)."""
    folder.mkdir(exist_ok=True)
    path = folder / "bad.jsonl"
    first = json.dumps(good).encode() + b"\n"
    text = json.dumps(good)
    if kind == "non_utf8":
        line = text.replace("?", "\udce9?", 1).encode("utf-8", "surrogateescape")  # a Latin-1 é
    elif kind == "duplicate_key":
        line = ("{" + json.dumps(key) + ": " + json.dumps(good[key]) + ", " + text[1:]).encode()
    elif kind == "truncated":
        line = text[:len(text) // 2].encode()
    elif kind == "wrong_type":
        line = json.dumps({**good, key: 5}).encode()
    elif kind == "missing_field":
        line = json.dumps({k: v for k, v in good.items() if k != key} or {"text": "hi"}).encode()
    elif kind == "empty":
        path.write_bytes(b"")
        return path
    elif kind == "folder":
        path.mkdir()
        return path
    path.write_bytes(first + line + b"\n")
    return path


def expected(kind: str, path: Path, key: str) -> str:
    return {
        "non_utf8": f"{path}:2: not valid UTF-8: byte 0xe9 at byte ",
        "duplicate_key": f"{path}:2: field '{key}': appears twice in one JSON object",
        "truncated": f"{path}:2: not valid JSON",
        "wrong_type": f"{path}:2: field '{key}",
        "missing_field": f"{path}:2: field '{key}",  # the eval reader names 'turns|instruction|prompt'
        "empty": f"{path}: holds no rows",
        "folder": f"{path}: ",
    }[kind]


def argv(command: str, data: Path, tmp: Path, model: Path) -> list[str]:
    other = tmp / "other.jsonl"
    mixer = ["--dataset_mixer", json.dumps({str(data): 1.0})]
    training = [*mixer, "--model", str(model), "--output_dir", str(tmp / "run")]
    if command == "data decontaminate --eval":
        other.write_text(json.dumps(CHAT) + "\n")
        return ["data", "decontaminate", str(other), str(tmp / "out.jsonl"), "--eval", str(data)]
    if command == "data decontaminate":
        other.write_text(json.dumps(EVAL) + "\n")
        return ["data", "decontaminate", str(data), str(tmp / "out.jsonl"), "--eval", str(other)]
    if command.startswith("data ") and command != "data mix":
        return [*command.split(), str(data), str(tmp / "out.jsonl")]
    if command == "data mix":
        return ["data", "mix", str(tmp / "mixed"), *mixer, "--kind", "chat"]
    if command in ("sft", "dpo"):
        return [command, *training]
    return ["generate", "--input", str(data), "--output", str(tmp / "out.jsonl"), "--model", str(model)]


@pytest.fixture
def no_model_loads(monkeypatch, tmp_path):
    def tripwire(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was reported")

    monkeypatch.setattr(zephyr.models, "load_model", tripwire)
    monkeypatch.chdir(tmp_path)


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()  # what building the tiny model printed
    code = cli(args)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_data_file(command, kind, tmp_path, tiny_model_dir, no_model_loads, capsys):
    good, key = COMMANDS[command]
    data = bad_file(tmp_path, kind, good, key)
    code, err = run_cli(argv(command, data, tmp_path, tiny_model_dir("llama")), capsys)
    assert code == 2, err
    assert expected(kind, data, key) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("command", ["data filter", "data binarize", "data decontaminate", "generate"])
def test_skip_invalid_skips_and_counts_non_utf8_and_duplicate_keys(command, tmp_path, no_model_loads, capsys):
    good, key = COMMANDS[command]
    broken = [bad_file(tmp_path / kind, kind, good, key) for kind in ("non_utf8", "duplicate_key")]
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"".join(p.read_bytes() for p in broken))  # lines 1, 3 good; 2 and 4 broken
    if command == "generate":
        from zephyr.generate import read_conversations

        rows, skipped = read_conversations(str(data), skip_invalid=True)
        assert (len(rows), skipped) == (2, 2)
        return
    (tmp_path / "eval.jsonl").write_text(json.dumps(EVAL) + "\n")
    args = [*command.split(), str(data), str(tmp_path / "out.jsonl"), "--skip_invalid"]
    if command == "data decontaminate":
        args += ["--eval", str(tmp_path / "eval.jsonl")]
    code = cli(args)
    out = capsys.readouterr().out
    assert code == 0
    counts = {line.split()[0]: line.split()[1] for line in out.splitlines() if line and line.split()[0] in
              ("read", "invalid_skipped", "written")}
    assert counts["read"] == "4" and counts["invalid_skipped"] == "2"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2


BAD_SETTINGS = [
    ("generate", ["--temperature", "-1"], "temperature"),
    ("generate", ["--temperature", "nan"], "temperature"),
    ("generate", ["--top_p", "0"], "top_p"),
    ("generate", ["--top_p", "5"], "top_p"),
    ("generate", ["--top_k", "-1"], "top_k"),
    ("generate", ["--max_new_tokens", "0"], "max_new_tokens"),
    ("generate", ["--max_new_tokens", "-5"], "max_new_tokens"),
    ("generate", ["--repetition_penalty", "0"], "repetition_penalty"),
    ("generate", ["--batch_size", "0"], "batch_size"),
    ("generate", ["--batch_size", "-1"], "batch_size"),
    ("generate", ["--dtype", "int8"], "dtype"),
    ("generate", ["--chat_template", "llama9"], "chat_template"),
    ("generate", ["--model", "/no/such/model"], "model"),
    ("generate", ["--model", "{empty}"], "model"),
    ("generate", ["--output", "{folder}"], "output"),
    ("generate", ["--output", "{input}"], "output"),
    ("sft", ["--use_lora", "--lora_r", "0"], "lora_r"),
    ("sft", ["--use_lora", "--lora_dropout", "1.5"], "lora_dropout"),
    ("sft", ["--use_lora", "--lora_dropout", "-0.1"], "lora_dropout"),
    ("sft", ["--use_lora", "--lora_alpha", "0"], "lora_alpha"),
    ("sft", ["--test_split_size", "-1"], "test_split_size"),
    ("sft", ["--max_train_samples", "-3"], "max_train_samples"),
    ("sft", ["--model", "/no/such/model"], "model"),
    ("sft", ["--model", "{empty}"], "model"),
    ("dpo", ["--decontaminate_ngram", "0"], "decontaminate_ngram"),
    ("dpo", ["--model", "{empty}"], "model"),
    ("data decontaminate", ["--ngram", "0"], "ngram"),
    ("data filter", ["--output", "{folder}"], "output"),
    ("data binarize", ["--output", "{under_file}"], "output"),
    ("data mix", ["--output_dir", "{input}"], "output_dir"),
]


@pytest.mark.parametrize("command, extra, name", BAD_SETTINGS, ids=[f"{c}{' '.join(e)}" for c, e, _ in BAD_SETTINGS])
def test_bad_setting(command, extra, name, tmp_path, tiny_model_dir, no_model_loads, capsys):
    good, _ = COMMANDS[command]
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps(good) + "\n")
    (tmp_path / "empty_model").mkdir()
    (tmp_path / "a_folder").mkdir()
    places = {"{empty}": str(tmp_path / "empty_model"), "{folder}": str(tmp_path / "a_folder"),
              "{input}": str(data), "{under_file}": str(data / "out.jsonl")}
    args = argv(command, data, tmp_path, tiny_model_dir("llama"))
    if command == "data decontaminate":
        args = ["data", "decontaminate", str(data), str(tmp_path / "out.jsonl"), "--eval", str(data)]
    extra = [places.get(word, word) for word in extra]
    if extra[0] in ("--output", "--output_dir") and command.startswith("data "):  # given as a positional
        args[3 if extra[0] == "--output" else 2] = extra[1]
        extra = []
    code, err = run_cli(args + extra, capsys)
    assert code == 2, err
    assert f"--{name}" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
