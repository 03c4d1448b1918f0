"""AlpacaEval and IFEval scoring on real benchmark files, with scripted models and judges."""

from __future__ import annotations

import json
import re

import pytest

from zephyr.eval import alpaca_eval, ifeval
from zephyr.eval.cli import EvalConfig, run


class ScriptedJudge:
    name = "scripted"

    def __init__(self, answer):
        self.answer, self.prompts = answer, []

    def complete(self, prompts):
        self.prompts += prompts
        return [self.answer(p) for p in prompts]


def test_alpaca_eval_win_rate_is_position_fair(shared_data):
    rows = alpaca_eval.load_instructions(str(shared_data / "alpaca_eval" / "gpt4_1106_preview.model_outputs.json"))
    assert len(rows) == 805
    rows = rows[:40]
    outputs = ["x" * (len(r["output"]) + 1) if i % 4 == 0 else "no" for i, r in enumerate(rows)]

    def longer(prompt):
        a = re.search(r"### Output \(A\)\n(.*)\n\n### Output \(B\)", prompt, re.S).group(1)
        b = re.search(r"### Output \(B\)\n(.*)\n\nWhich output", prompt, re.S).group(1)
        return "A" if len(a) > len(b) else "B"

    results, report = alpaca_eval.judge_outputs(ScriptedJudge(longer), rows, outputs, seed=1)
    assert report["n_wins"] == 10 and report["n_losses"] == 30 and report["win_rate"] == 25.0
    assert {r["ours_shown_first"] for r in results} == {True, False}
    expected_se = 100 * ((0.25 * 0.75 * 40 / 39) / 40) ** 0.5
    assert report["standard_error"] == round(expected_se, 2)
    _, ties = alpaca_eval.judge_outputs(ScriptedJudge(lambda p: "I cannot decide"), rows[:4], outputs[:4])
    assert ties["n_ties"] == 4 and ties["win_rate"] == 50.0
    assert alpaca_eval.parse_preference("Output (B)") == "B" and alpaca_eval.parse_preference("A") == "A"


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
