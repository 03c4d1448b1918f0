"""IFEval scoring on real benchmark files, and the eval command's own checks."""

from __future__ import annotations

import json

import pytest

from zephyr.eval import ifeval
from zephyr.eval.cli import EvalConfig, run


def test_ifeval_checks_instructions(shared_data):
    pytest.importorskip("if_verifiable")
    rows = ifeval.load_prompts(str(shared_data / "ifeval" / "input_data.jsonl"))
    assert len(rows) == 541
    row = {"key": 1, "prompt": "Answer in lowercase without commas.",
           "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]}
    good = ifeval.check(row, "all lowercase and no commas here")
    bad = ifeval.check(row, "Hello, World")
    half = ifeval.check(row, "lowercase, but a comma")
    assert [(i["strict"], i["loose"]) for i in good] == [(True, True), (True, True)]
    assert [i["strict"] for i in bad] == [False, False]
    assert [i["strict"] for i in half] == [False, True]
    assert [i["strict"] for i in ifeval.check(row, "   ")] == [False, False]
    report = ifeval.summarize([good, bad, half])
    assert report["prompt_level_strict"] == round(100 / 3, 2)
    assert report["instruction_level_strict"] == 50.0
    unknown = ifeval.check({**row, "instruction_id_list": ["made:up"], "kwargs": [{}]}, "text")
    assert unknown == [{"instruction_id": "made:up", "strict": None, "loose": None}]
    assert ifeval.summarize([good, unknown])["prompts_unscored"] == 1


def test_eval_command_on_tiny_model(tiny_model_dir, shared_data, tmp_path):
    pytest.importorskip("if_verifiable")
    config = EvalConfig(benchmark="ifeval", model=str(tiny_model_dir("llama")), max_new_tokens=8,
                        data=str(shared_data / "ifeval" / "input_data.jsonl"), limit=3,
                        output_dir=str(tmp_path / "ifeval"))
    report = run(config)
    assert report["prompts"] == 3 and report["benchmark"] == "ifeval"
    answers = [json.loads(line) for line in (tmp_path / "ifeval" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == 3 and all("instructions" in a for a in answers)
    assert json.loads((tmp_path / "ifeval" / "report.json").read_text()) == report


def test_eval_command_errors(tmp_path):
    from zephyr.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown benchmark 'mmlu'"):
        run(EvalConfig(benchmark="mmlu"), generate=lambda c, t=None: [])
    with pytest.raises(ConfigError, match="exactly one of --judge"):
        run(EvalConfig(benchmark="mt_bench"), generate=lambda c, t=None: [])
