"""`zephyr generate` (batched, resumable, validated input) and `zephyr chat` (streaming REPL) on a tiny model."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from zephyr.cli import main as cli
from zephyr.errors import DataError
from zephyr.data.io import finished_rows
from zephyr.generate import GenerateConfig, read_conversations, run


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


CONVERSATIONS = [{"messages": [{"role": "user", "content": f"Question {i}?"}]} for i in range(5)] + [
    {"prompt": "Plain prompt"},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]},
]


def test_generate_writes_every_row_and_resumes(tiny_model_dir, tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "in.jsonl", CONVERSATIONS)
    out = tmp_path / "out.jsonl"
    common = ["--model", str(tiny_model_dir("llama")), "--input", str(source), "--output", str(out),
              "--max_new_tokens", "6", "--batch_size", "3"]
    assert cli(["generate", *common]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(len(CONVERSATIONS)))
    for row in rows:
        original = CONVERSATIONS[row["index"]]
        assert row["messages"][-1] == {"role": "assistant", "content": row["reply"]}
        assert len(row["messages"]) == len(original.get("messages", [0])) + 1
    first = {r["index"]: r["reply"] for r in rows}

    # a kill during the second batch: keep the first batch, leave a torn line
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:10])
    assert finished_rows(out) == {0, 1, 2} and out.read_text() == "".join(lines[:3])
    report = run(GenerateConfig(**{"model": str(tiny_model_dir("llama")), "input": str(source),
                                   "output": str(out), "max_new_tokens": 6, "batch_size": 3}))
    assert report["already_done"] == 3 and report["generated"] == len(CONVERSATIONS) - 3
    again = {json.loads(line)["index"]: json.loads(line)["reply"] for line in out.read_text().splitlines()}
    assert again == first  # same seed, same batches: the resumed run reproduces the uninterrupted one

    # nothing left to do: not even the tokenizer is loaded
    import zephyr.models

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded a tokenizer with nothing to generate")

    monkeypatch.setattr(zephyr.models, "load_tokenizer", no_loading)
    report = run(GenerateConfig(model=str(tiny_model_dir("llama")), input=str(source), output=str(out),
                                max_new_tokens=6, batch_size=3))
    assert report["generated"] == 0 and report["already_done"] == len(CONVERSATIONS)


def test_greedy_generation_is_deterministic(tiny_model_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", CONVERSATIONS[:2])
    outputs = []
    for name in ("a", "b"):
        cfg = GenerateConfig(model=str(tiny_model_dir("mistral")), input=str(source), output=str(tmp_path / name),
                             temperature=0, max_new_tokens=5, seed=int(name == "b"))
        run(cfg)
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("line, message", [
    ("{not json", "in.jsonl:2: not valid JSON"),
    ('["a list"]', "in.jsonl:2: each line must be a JSON object"),
    ('{"text": "hi"}', "in.jsonl:2: field 'messages': missing"),
    ('{"messages": [{"role": "user", "content": ""}]}', "in.jsonl:2: field 'messages[0].content': message 0 (user) has empty"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', "in.jsonl:2: field 'messages[0].role': message 0 has unknown role"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
     "in.jsonl:2: field 'messages': the prompt must end with a user turn"),
])
def test_bad_input_names_file_line_and_field(tmp_path, line, message):
    source = write_jsonl(tmp_path / "in.jsonl", [CONVERSATIONS[0], line, CONVERSATIONS[1]])
    with pytest.raises(DataError) as err:
        read_conversations(str(source))
    assert message in str(err.value)
    rows, skipped = read_conversations(str(source), skip_invalid=True)
    assert len(rows) == 2 and skipped == 1


def test_cli_prints_clean_error_without_traceback(tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", ["{oops"])
    assert cli(["generate", "--input", str(source), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "in.jsonl:1: not valid JSON" in err and "Traceback" not in err
    assert cli(["generate", "--max_new_token", "3"]) == 2
    assert "did you mean 'max_new_tokens'" in capsys.readouterr().err


def test_chat_loop_streams_and_handles_commands(tiny_model_dir):
    from zephyr.chat import ChatConfig, chat_loop
    from zephyr.models import load_model, load_tokenizer

    config = ChatConfig(model=str(tiny_model_dir("gemma3")), max_new_tokens=4, temperature=0)
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer).eval()
    script = io.StringIO("hello\n/system Be terse.\nfirst\nsecond\n/reset\n/bogus\nthird\n/quit\nnever\n")
    out = io.StringIO()
    messages = chat_loop(model, tokenizer, config, script, out)
    text = out.getvalue()
    assert text.count("assistant> ") == 4
    assert "(system prompt set; conversation reset)" in text and "(conversation reset)" in text
    assert "unknown command /bogus" in text
    # after /reset the system prompt stays and only the last exchange remains; "never" came after /quit
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[0]["content"] == "Be terse." and messages[1]["content"] == "third"


def test_chat_command_over_a_pipe(tiny_model_dir):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run([sys.executable, "-m", "zephyr", "chat", "--model", str(tiny_model_dir("mistral")),
                             "--max_new_tokens", "3"], input="hi there\nhow are you\n", capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("assistant> ") == 2 and result.stdout.count("you> ") == 3


def tripwire(*args, **kwargs):
    raise AssertionError("the model was loaded")


def test_output_is_bound_to_its_input_model_and_settings(tiny_model_dir, tmp_path, capsys):
    from zephyr.generate import bind_output, settings_path

    source = write_jsonl(tmp_path / "in.jsonl", CONVERSATIONS)
    out = tmp_path / "out.jsonl"
    model = str(tiny_model_dir("llama"))
    base = ["generate", "--model", model, "--input", str(source), "--output", str(out)]
    bind_output(GenerateConfig(model=model, input=str(source), output=str(out)))
    write_jsonl(out, [{"index": 0, "reply": "old"}])
    recorded = json.loads(settings_path(out).read_text())
    assert recorded["temperature"] == 0.7 and recorded["model"] == model and len(recorded["input_sha256"]) == 64

    other = write_jsonl(tmp_path / "other.jsonl", CONVERSATIONS[:3])
    for change, names in ((["--input", str(other)], "input_sha256: "), (["--temperature", "0.2"], "temperature: 0.7"),
                          (["--seed", "1", "--batch_size", "2"], "batch_size: 8 there, 2 now; seed: 42 there, 1 now")):
        assert cli([*base, *change]) == 2
        err = capsys.readouterr().err
        assert f"--output: {out} holds replies made with other settings (" in err and names in err, err
        assert "pass another --output, or --overwrite to replace its replies" in err
    assert out.read_text() == '{"index": 0, "reply": "old"}\n'

    settings_path(out).unlink()  # rows whose origin is unknown are not resumed either
    assert cli(base) == 2
    assert "already holds rows but no out.jsonl.settings.json" in capsys.readouterr().err

    # --overwrite starts again; the output then matches what made it
    assert cli([*base, "--input", str(other), "--overwrite", "--max_new_tokens", "3"]) == 0
    assert sorted(json.loads(line)["index"] for line in out.read_text().splitlines()) == [0, 1, 2]
    assert json.loads(settings_path(out).read_text())["max_new_tokens"] == 3


def test_resuming_stops_at_a_line_without_index(tmp_path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", CONVERSATIONS)
    out = tmp_path / "out.jsonl"
    from zephyr.generate import bind_output

    config = GenerateConfig(model="/no/model/needed", input=str(source), output=str(out))
    bind_output(config)
    text = '{"index": 0, "reply": "a"}\n{"reply": "b"}\n{"index": 2, "reply": "c"}\n'
    out.write_text(text)
    assert cli(["generate", "--model", "/no/model/needed", "--input", str(source), "--output", str(out)]) == 2
    assert "out.jsonl:2: field 'index': missing or not an integer" in capsys.readouterr().err
    assert out.read_text() == text


def test_prompts_too_long_for_the_context_are_refused_before_the_model_loads(tiny_model_dir, tmp_path,
                                                                              monkeypatch, capsys):
    import zephyr.models

    long_prompt = " ".join(f"word{i}" for i in range(3000))  # > 2048 tokens, the tiny model's context
    source = write_jsonl(tmp_path / "in.jsonl", [CONVERSATIONS[0], {"prompt": long_prompt}, CONVERSATIONS[1]])
    out = tmp_path / "new_folder" / "out.jsonl"
    args = ["generate", "--model", str(tiny_model_dir("llama")), "--input", str(source), "--output", str(out),
            "--max_new_tokens", "4"]
    with monkeypatch.context() as patch:
        patch.setattr(zephyr.models, "load_model", tripwire)
        assert cli(args) == 2
        err = capsys.readouterr().err
        assert "in.jsonl:2: field 'prompt': the prompt is " in err and "tokens; with max_new_tokens 4 it does not " \
            "fit the model's context of 2048 tokens; shorten it, lower --max_new_tokens, or pass --skip_invalid" in err
        assert not out.exists() or out.read_text() == ""

        huge = write_jsonl(tmp_path / "huge.jsonl", [{"prompt": "x" * 10_000_000}])  # refused without tokenizing
        patch.setattr("zephyr.generate.prompt_ids", tripwire)
        assert cli([*args[:4], str(huge), "--output", str(tmp_path / "huge_out.jsonl")]) == 2
        assert ("huge.jsonl:1: field 'prompt': the prompt has 10000000 characters, far more than the model's "
                "context of 2048 tokens can hold") in capsys.readouterr().err
    assert cli([*args, "--skip_invalid"]) == 0
    assert "2 generated, 0 already done, 0 invalid lines and 1 too-long prompts skipped" in capsys.readouterr().out
    assert sorted(json.loads(line)["index"] for line in out.read_text().splitlines()) == [0, 2]


def test_full_disk_keeps_the_rows_written_and_the_next_run_resumes(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import errno

    import zephyr.data.io

    source = write_jsonl(tmp_path / "in.jsonl", CONVERSATIONS)
    out = tmp_path / "out.jsonl"
    args = ["generate", "--model", str(tiny_model_dir("llama")), "--input", str(source), "--output", str(out),
            "--max_new_tokens", "3", "--batch_size", "2"]
    calls = []
    real_fsync = zephyr.data.io.os.fsync

    def fsync_until_full(fd):
        calls.append(fd)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    with monkeypatch.context() as patch:
        patch.setattr(zephyr.data.io.os, "fsync", fsync_until_full)
        assert cli(args) == 2
    err = capsys.readouterr().err
    assert f"no space left on {out} (the disk is full, errno 28): the rows written before are kept" in err
    assert "Traceback" not in err
    assert finished_rows(out) >= {0, 1, 2, 3}
    assert cli(args) == 0
    assert sorted(json.loads(line)["index"] for line in out.read_text().splitlines()) == list(range(len(CONVERSATIONS)))
