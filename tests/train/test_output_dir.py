"""The output folder of a training run: locked against a second run, and never mixed with another run's files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from zephyr.cli import main as zephyr
from zephyr.errors import ConfigError
from zephyr.train import TokenScorer, Trainer, collate_rows, latest_checkpoint
from zephyr.train.output_dir import LOCK, claim, process_start
from tests.train.test_trainer import _config, _examples, _model, nll_loss

REPO = Path(__file__).resolve().parents[2]
RECIPE = {"learning_rate": 0.001, "seed": 7, "logging_steps": 1, "report_to": ["jsonl"], "output_dir": "a"}


def _checkpoint(folder: Path, step: int, recipe: dict) -> None:
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    (checkpoint / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (checkpoint / "COMPLETE").write_text("")


def test_a_new_folder_is_claimed_and_records_the_recipe(tmp_path):
    lock = claim(tmp_path / "run", RECIPE, resume=False, overwrite=False)
    assert yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text()) == RECIPE
    assert json.loads((tmp_path / "run" / LOCK).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / "run" / LOCK).exists()


@pytest.mark.parametrize("resume", [False, True])
def test_a_folder_holding_another_run_is_refused_with_the_differences(tmp_path, resume):
    _checkpoint(tmp_path, 4, RECIPE)
    with pytest.raises(ConfigError, match=r"--output_dir: .* holds a run with other settings \(learning_rate: "
                                          r"0.001 -> 0.002; seed: 7 -> 8\); .*--overwrite_output_dir"):
        claim(tmp_path, {**RECIPE, "learning_rate": 0.002, "seed": 8}, resume=resume, overwrite=False)
    assert latest_checkpoint(tmp_path).name == "checkpoint-4"  # untouched
    assert not (tmp_path / LOCK).exists()


def test_overwrite_clears_the_other_run(tmp_path):
    _checkpoint(tmp_path, 4, RECIPE)
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    claim(tmp_path, {**RECIPE, "learning_rate": 0.002}, resume=False, overwrite=True).release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_the_same_run_needs_resume_to_continue_and_ignores_logging_fields(tmp_path):
    _checkpoint(tmp_path, 4, RECIPE)
    with pytest.raises(ConfigError, match="already holds checkpoint-4 of this run; pass --resume"):
        claim(tmp_path, RECIPE, resume=False, overwrite=False)
    changed = {**RECIPE, "logging_steps": 10, "report_to": ["tensorboard"], "output_dir": "b"}
    claim(tmp_path, changed, resume=True, overwrite=False).release()
    assert latest_checkpoint(tmp_path).name == "checkpoint-4"


@pytest.mark.parametrize("resume, overwrite", [(False, False), (True, False), (False, True)])
def test_a_folder_with_other_files_is_refused_never_emptied(tmp_path, resume, overwrite):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty and holds no zephyr run"):
        claim(tmp_path, RECIPE, resume=resume, overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_live_holder_is_refused_and_a_dead_one_taken_over(tmp_path, capsys):
    child = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / LOCK).write_text(json.dumps({"pid": child.pid, "host": socket.gethostname(),
                                                 "start": process_start(child.pid), "since": "today"}))
        with pytest.raises(ConfigError, match=f"is in use by another run \\(pid {child.pid} on "):
            claim(tmp_path, RECIPE, resume=False, overwrite=False)
    finally:
        child.kill()
        child.wait()
    lock = claim(tmp_path, RECIPE, resume=False, overwrite=False)
    assert f"left by pid {child.pid}, which has ended" in capsys.readouterr().out
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    lock.release()


def test_a_reused_pid_is_not_a_live_holder(tmp_path):
    """The pid is alive but started later than the lock's holder: another process with the same number."""
    (tmp_path / LOCK).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "start": "1"}))
    claim(tmp_path, RECIPE, resume=False, overwrite=False).release()


def test_a_second_process_cannot_claim_a_folder_in_use(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from zephyr.train.output_dir import claim; "
         f"claim({str(tmp_path)!r}, {{}}, False, False); print('held', flush=True); time.sleep(60)"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"in use by another run \\(pid {holder.pid} "):
            claim(tmp_path, {}, resume=True, overwrite=False)
    finally:
        holder.kill()
        holder.wait()
    claim(tmp_path, {}, resume=True, overwrite=False).release()  # killed: its lock is stale


def test_a_stage_and_its_trainer_claim_the_folder_once(tmp_path):
    outer = claim(tmp_path, RECIPE, resume=False, overwrite=True)
    (tmp_path / "reference.safetensors").write_text("written by the stage")
    inner = claim(tmp_path, RECIPE, resume=False, overwrite=True)  # re-entered: not emptied again
    assert (tmp_path / "reference.safetensors").exists()
    inner.release()
    assert (tmp_path / LOCK).exists()
    outer.release()
    assert not (tmp_path / LOCK).exists()


def _trainer(out, folder, **overrides):
    examples = _examples(512, 4)
    cfg = _config(out, **{"max_steps": 4, "save_steps": 1, "save_total_limit": 1, **overrides})
    return Trainer(cfg, TokenScorer(_model(folder)), nll_loss, [[[i]] for i in range(4)],
                   lambda item: collate_rows(item, examples, 0))


def test_a_new_run_never_continues_or_rotates_with_an_old_one(tmp_path, tiny_model_dir):
    """The old run's checkpoint-4 outlived a new run's checkpoints (rotation kept the highest step), and a later
    --resume continued the old run: now the folder is refused, or replaced when asked to."""
    folder = tiny_model_dir("mistral")
    _trainer(tmp_path, folder).train()
    with pytest.raises(ConfigError, match="learning_rate: 0.001 -> 0.002"):
        _trainer(tmp_path, folder, learning_rate=2e-3, max_steps=2)
    with pytest.raises(ConfigError, match="learning_rate: 0.001 -> 0.002"):
        _trainer(tmp_path, folder, learning_rate=2e-3, max_steps=2, resume=True)
    new = _trainer(tmp_path, folder, learning_rate=2e-3, max_steps=2, overwrite_output_dir=True).train()
    assert new.global_step == 2 and latest_checkpoint(tmp_path).name == "checkpoint-2"
    resumed = _trainer(tmp_path, folder, learning_rate=2e-3, max_steps=2, resume=True)
    assert resumed.train().global_step == 2
    assert yaml.safe_load((tmp_path / "recipe.yaml").read_text())["learning_rate"] == 2e-3


def test_sft_refuses_a_folder_of_another_run_before_loading_data(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    _checkpoint(out, 2, {"learning_rate": 0.5})
    (out / "recipe.yaml").write_text(yaml.safe_dump({"learning_rate": 0.5}))
    start = time.perf_counter()
    code = zephyr(["sft", "--model", str(tiny_model_dir("mistral")), "--output_dir", str(out), "--dataset_mixer",
                   json.dumps({str(tmp_path / "missing.jsonl"): 1.0}), "--chat_template", "zephyr"])
    err = capsys.readouterr().err
    assert code == 2 and "holds a run with other settings (" in err and "learning_rate: 0.5 -> 2e-05" in err, err
    assert time.perf_counter() - start < 30
