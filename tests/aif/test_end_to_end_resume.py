"""`zephyr aif` as a process, killed with SIGKILL in every stage (completions, judge aspects, critique, binarize)
and started again with the same command, ends with exactly what an uninterrupted run gives: no completion or
judge call lost or doubled, the same ratings and pairs, and a summary with every headline count.

The kills land deterministically: the pool is a tiny model at three sampling settings plus one scripted
OpenAI-compatible answerer, and both it and the scripted UltraFeedback judge can hold a chosen request (the
first of the run's second step) until the process is killed; the binarize stage is paused by a wrapper right
after rated.jsonl is written, before pairs.jsonl and report.json."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.aif.conftest import UltraFeedbackJudge, uf_text
from tests.fixtures.aif_pause import MARKER, PAUSE_AFTER_RATED
from tests.aif.test_aif import PROMPTS, write_prompts
from tests.fixtures.openai_server import scripted_server
from zephyr.aif.cli import AIFConfig, run

REPO = Path(__file__).resolve().parents[2]
SUMMARY = ("prompts", "completions", "judged", "judge_calls", "unparsable", "unparsable_aspect_calls",
           "unparsable_critiques", "unparsable_rescores", "pairs", "dropped_ties", "tied_pairs_kept",
           "dropped_fewer_than_2_rated")


class Gate:
    """Wraps a scripted server's `respond`: counts requests by kind and holds the chosen one until let go."""

    def __init__(self, respond, kind_of):
        self.respond, self.kind_of = respond, kind_of
        self.calls: Counter = Counter()
        self.lock = threading.Lock()
        self.hold, self.held, self.release = None, threading.Event(), threading.Event()

    def hold_at(self, kind: str, nth_from_now: int) -> None:
        self.held.clear()
        self.release.clear()
        self.hold = (kind, self.calls[kind] + nth_from_now)

    def let_go(self) -> None:
        self.hold = None
        self.release.set()

    def __call__(self, body: dict) -> str:
        kind = self.kind_of(body)
        with self.lock:
            self.calls[kind] += 1
            number = self.calls[kind]
        if self.hold == (kind, number):
            self.held.set()
            self.release.wait(120)
        return self.respond(body)


def judge_kind(body: dict) -> str:
    if body["messages"][0]["content"] == uf_text("annotation_system_prompt"):
        return "aspect"
    return "rescore" if body["max_tokens"] == 1 else "critique"


def answer(body: dict) -> str:
    return f"{body['model']} answers {body['messages'][-1]['content'][::-1]}"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sorted_rows(path: Path) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True) for row in read(path))


def last_stage(log: Path) -> str:
    stages = [line for line in log.read_text().replace("\r", "\n").splitlines()
              if line.startswith("zephyr aif: stage ")]
    return stages[-1].removeprefix("zephyr aif: stage ") if stages else ""


@pytest.mark.slow
def test_killed_in_every_stage_resumes_to_the_uninterrupted_result(tiny_model_dir, uf_dir, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    model = tiny_model_dir("mistral")
    judge_gate = Gate(UltraFeedbackJudge(), judge_kind)
    answer_gate = Gate(answer, lambda body: "answer")
    with scripted_server(judge_gate) as judge, scripted_server(answer_gate) as answerer:
        pool = [f"model={model},name=t{t},temperature={t},engine=transformers" for t in (0, 0.7)] + \
            [f"{model},name=hot,top_k=5,engine=transformers", f"url={answerer.url},model=api,name=api"]
        out = tmp_path / "aif"
        args = ["--prompts", str(prompts), "--pool", *pool, "--judge_url", judge.url, "--judge_model", "gpt-4",
                "--output_dir", str(out), "--max_new_tokens", "6", "--batch_size", "1",
                "--ultrafeedback_dir", str(uf_dir)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

        def start(log: Path, wrapper: str | None = None) -> subprocess.Popen:
            head = ["-c", wrapper] if wrapper else ["-m", "zephyr", "aif"]
            return subprocess.Popen([sys.executable, *head, *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=open(log, "w"), text=True)

        def killed_when(gate: Gate, kind: str, stage: str) -> None:
            """Run until the gate holds the first request of the stage's second step, then SIGKILL."""
            gate.hold_at(kind, 5 if kind != "answer" else 2)  # a step: 4 judge calls, or 1 answer of the api
            log = tmp_path / f"{stage}.log"
            process = start(log)
            assert gate.held.wait(180), log.read_text()[-2000:]
            process.send_signal(signal.SIGKILL)
            process.wait()
            gate.let_go()
            assert last_stage(log) == stage

        killed_when(answer_gate, "answer", "completions")
        written = read(out / "completions.jsonl")
        assert len(written) == 4  # the first step's completions, saved before the kill
        killed_when(judge_gate, "aspect", "judge aspects")
        assert len(read(out / "aspects.jsonl")) == 4
        killed_when(judge_gate, "critique", "critique")
        assert len(read(out / "aspects.jsonl")) == 16 and len(read(out / "critiques.jsonl")) == 4

        process = start(tmp_path / "binarize.log", PAUSE_AFTER_RATED)
        assert process.stdout.readline().strip() == MARKER
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert last_stage(tmp_path / "binarize.log") == "binarize"
        assert (out / "rated.jsonl").exists() and not (out / "pairs.jsonl").exists()
        assert not (out / "report.json").exists()

        asked = Counter(judge_gate.calls)
        final = subprocess.run([sys.executable, "-m", "zephyr", "aif", *args], env=env, cwd=REPO,
                               capture_output=True, text=True)
        assert final.returncode == 0, final.stderr[-2000:]
        assert judge_gate.calls == asked  # binarizing again asks the judge nothing
        report = json.loads((out / "report.json").read_text())
        for key in SUMMARY:
            assert f"summary.{key}" in final.stdout
        calls = Counter(judge_gate.calls)

        # the uninterrupted run, on the same completions, gives the same files and counts
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        for name in ("settings.json", "completions.jsonl"):
            shutil.copy(out / name, fresh / name)
        again = run(AIFConfig(prompts=str(prompts), pool=pool, judge_url=judge.url, judge_model="gpt-4",
                              output_dir=str(fresh), max_new_tokens=6, batch_size=1, ultrafeedback_dir=str(uf_dir)))
        fresh_calls = judge_gate.calls - calls

    completions = read(out / "completions.jsonl")
    assert sorted(c["index"] for c in completions) == list(range(16))  # none lost, none doubled
    assert completions[:4] == written  # what was saved before the kill is kept as it was
    # every judge call made once, except those of the step in flight at each kill (answered, never saved)
    assert fresh_calls["aspect"] == fresh_calls["critique"] == 16
    assert 16 <= calls["aspect"] <= 16 + 4 and 16 <= calls["critique"] <= 16 + 4
    assert calls["rescore"] == fresh_calls["rescore"]
    for name in ("aspects.jsonl", "critiques.jsonl", "rescores.jsonl", "rated.jsonl", "pairs.jsonl"):
        assert sorted_rows(out / name) == sorted_rows(fresh / name), name
    assert again == report
    summary = report["summary"]
    assert list(summary) == list(SUMMARY)
    assert summary["prompts"] == len(PROMPTS) and summary["completions"] == summary["judged"] == 16
    assert summary["unparsable"] == summary["unparsable_aspect_calls"] == 1  # the garbled honesty call
    assert summary["judge_calls"] == 16 + 16 + report.get("aif_overall_score_10_rescored", 0)
    assert summary["pairs"] == len(read(out / "pairs.jsonl")) == 4
    assert summary["dropped_ties"] == summary["dropped_fewer_than_2_rated"] == 0
    assert summary["tied_pairs_kept"] == report.get("binarize_tied_pairs", 0)
