"""Exact gradient accumulation across processes: 2 CPU processes (DDP via accelerate, gloo) x 2 accumulated
micro-batches equal one batch of all 4 in one process — loss and gradients to 1e-5."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from zephyr.train import TokenScorer, TrainConfig, Trainer, collate_rows

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import examples, loss_fn  # noqa: E402


@pytest.mark.slow
def test_two_processes_accumulating_equal_one_big_batch(tmp_path, tiny_model_dir):
    folder = tiny_model_dir("mistral")
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", str(Path(__file__).with_name("ddp_worker.py")),
                           str(folder), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["processes"] == 2
    ddp_grads = load_file(tmp_path / "grads.safetensors")

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    data = examples(model.config.vocab_size)
    cfg = TrainConfig(output_dir=str(tmp_path / "single"), max_steps=1, logging_steps=1, save_steps=0,
                      progress_bar=False, report_to=[], learning_rate=1e-3, warmup_ratio=0.0)
    trainer = Trainer(cfg, TokenScorer(model), loss_fn, [[[0], [1], [2], [3]]], lambda item: collate_rows(item, data, 0))
    seen = {}
    original = trainer.optimizer.optimizer.step

    def step(*args, **kwargs):
        seen.update({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        return original(*args, **kwargs)

    trainer.optimizer.optimizer.step = step
    single = trainer.train()
    assert result["loss"] == pytest.approx(single.log_history[0]["loss"], abs=1e-5)
    assert seen.keys() == ddp_grads.keys() and seen
    for name in seen:
        torch.testing.assert_close(ddp_grads[name], seen[name], atol=1e-5, rtol=1e-5, msg=name)
