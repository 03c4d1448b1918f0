"""`zephyr dpo` end to end on a tiny model: trains, logs every metric, writes the card; LoRA with a precomputed
reference, whose held-out log-probs land in the run's folder; and a run killed after a checkpoint resumes to the
same numbers as an uninterrupted one, reusing the cached reference log-probs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zephyr.cli import main as zephyr
from zephyr.dpo.evaluate import REFERENCE_SCORES
from zephyr.dpo.loss_metrics import METRIC_NAMES

REPO = Path(__file__).resolve().parents[2]
HEADER = ("| Training Loss | Epoch | Step | Validation Loss | Rewards/chosen | Rewards/rejected | Rewards/accuracies "
          "| Rewards/margins | Logps/rejected | Logps/chosen | Logits/rejected | Logits/chosen |")


def args(model, out, *extra):
    mixer = json.dumps({"zephyr/demo_data/pairs_train.jsonl": 1.0, "zephyr/demo_data/pairs_test.jsonl@test": 1.0})
    return ["dpo", "--model", str(model), "--dataset_mixer", mixer, "--test_split_size", "0",
            "--max_train_samples", "24", "--max_eval_samples", "8", "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8", "--learning_rate", "1e-3",
            "--logging_steps", "1", "--report_to", "jsonl", "--progress_bar", "false", *extra]


def records(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_full_run_logs_metrics_and_writes_card(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    # one batch of 4 pairs seen at every step: its loss must fall (different batches need not)
    assert zephyr(args(tiny_model_dir("mistral"), out, "--max_steps", "4", "--eval_steps", "2",
                       "--max_train_samples", "4")) == 0
    logs = records(out)
    train = [r for r in logs if "loss" in r]
    evals = [r for r in logs if "eval_loss" in r]
    assert len(train) == 4 and len(evals) == 2
    for name in METRIC_NAMES[1:]:
        assert name in train[0] and f"eval_{name}" in evals[0]
    assert train[-1]["loss"] < train[0]["loss"]
    card = (out / "README.md").read_text()
    assert HEADER in card and "- Rewards/accuracies:" in card
    assert (out / "model.safetensors").exists() and (out / "recipe.yaml").exists()


def test_bad_field_is_a_user_error(capsys):
    assert zephyr(["dpo", "--loss_type", "dpo++"]) == 2
    assert "loss_type" in capsys.readouterr().err


@pytest.mark.slow
def test_lora_precompute_and_kill_resume(tiny_model_dir, tmp_path):
    model = tiny_model_dir("llama")
    cache = tmp_path / "cache"
    common = ["--use_lora", "true", "--lora_r", "4", "--reference", "precompute", "--ref_cache_dir", str(cache),
              "--max_steps", "6", "--save_steps", "2", "--eval_steps", "3"]
    whole = tmp_path / "whole"
    assert zephyr(args(model, whole, *common)) == 0
    assert (whole / "adapter_model.safetensors").exists() and not (whole / "model.safetensors").exists()
    (cached,) = cache.glob("*.safetensors")
    stamp = cached.stat().st_mtime_ns
    # the held-out pairs' reference log-probs, by position in the test split: the cached table's last 8 rows
    table, held_out = load_file(cached)["ref_logps"], load_file(whole / REFERENCE_SCORES)
    assert held_out["index"].tolist() == list(range(8))
    assert torch.equal(held_out["chosen"], table[-8:, 0]) and torch.equal(held_out["rejected"], table[-8:, 1])

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "zephyr", *args(model, killed, *common)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(killed.glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(killed.glob("checkpoint-*")), "no checkpoint before the kill"
    assert zephyr(args(model, killed, *common, "--resume", "true")) == 0
    assert cached.stat().st_mtime_ns == stamp and len(list(cache.glob("*.safetensors"))) == 1  # reused
    resumed = load_file(killed / REFERENCE_SCORES)
    assert all(torch.equal(resumed[name], held_out[name]) for name in held_out)

    a, b = records(whole), records(killed)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for key in x:
            if key.startswith(("loss", "eval_", "rewards/", "logps/")):
                assert y[key] == pytest.approx(x[key], abs=1e-5), (x["step"], key)


@pytest.mark.slow
def test_precomputed_reference_of_train_and_test_pairs_do_not_collide(tiny_model_dir, tmp_path):
    """Train and test pairs share the reference table: before any update the policy is the reference, so the
    first step's rewards are zero - not another split's log-probs looked up by a clashing index."""
    out = tmp_path / "run"
    assert zephyr(args(tiny_model_dir("mistral"), out, "--reference", "precompute", "--ref_cache_dir",
                       str(tmp_path / "cache"), "--max_steps", "1", "--eval_steps", "1")) == 0
    first = next(r for r in records(out) if "loss" in r)
    assert abs(first["rewards/chosen"]) < 1e-4 and abs(first["rewards/rejected"]) < 1e-4
    assert first["loss"] == pytest.approx(0.6931, abs=1e-3)  # -log sigmoid(0)


@pytest.mark.slow
def test_reference_cache_is_keyed_by_the_loaded_dtype_not_its_name(tiny_model_dir, tmp_path):
    """`float32` and `fp32` load the same weights: one cache entry; `dtype: auto` must not share an entry
    between machines where it means bf16 and fp32, so the key is the dtype the weights loaded in."""
    model, cache = tiny_model_dir("mistral"), tmp_path / "cache"
    common = ["--reference", "precompute", "--ref_cache_dir", str(cache), "--max_steps", "1"]
    assert zephyr(args(model, tmp_path / "a", *common, "--dtype", "float32")) == 0
    (entry,) = cache.glob("*.safetensors")
    assert zephyr(args(model, tmp_path / "b", *common, "--dtype", "fp32")) == 0
    assert list(cache.glob("*.safetensors")) == [entry]
    assert zephyr(args(model, tmp_path / "c", *common, "--dtype", "bfloat16")) == 0
    assert len(list(cache.glob("*.safetensors"))) == 2


@pytest.mark.parametrize("extra,message", [
    (["--beta", "0"], "--beta: must be a number > 0"),
    (["--beta", "-0.1"], "--beta: must be a number > 0"),
    (["--beta", "nan"], "--beta: must be a number > 0"),
    (["--label_smoothing", "0.5"], "--label_smoothing: must be in [0, 0.5)"),
    (["--label_smoothing", "nan"], "--label_smoothing: must be in [0, 0.5)"),
    (["--loss_type", "simpo", "--simpo_gamma", "inf"], "--simpo_gamma: must be a number >= 0"),
    (["--max_length", "0"], "--max_length: must be >= 2 tokens"),
    (["--max_prompt_length", "0"], "--max_prompt_length: must be >= 1 token"),
    (["--max_prompt_length", "-1"], "--max_prompt_length: must be >= 1 token"),
    (["--per_device_train_batch_size", "-2"], "--per_device_train_batch_size: must be a number >= 1"),
    (["--learning_rate", "nan"], "--learning_rate: must be a number >= 0"),
])
def test_bad_dpo_setting_is_a_clear_error(extra, message, tmp_path, capsys):
    assert zephyr(["dpo", "--output_dir", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
