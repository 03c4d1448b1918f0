"""Run by test_ddp.py under `torchrun --nproc_per_node 2`: one optimizer step over 4 micro-batches (2 per process,
accumulated), saving the gradients the optimizer sees and the logged loss (rank 0)."""

from __future__ import annotations

import json
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from zephyr.train import TokenScorer, TrainConfig, Trainer, collate_rows
from zephyr.train.packing import Tokenized


def examples(vocab: int) -> list[Tokenized]:
    g = torch.Generator().manual_seed(5)
    out = []
    for length, cut in ((9, 3), (20, 4), (14, 12), (30, 10)):  # 6, 16, 2 and 20 targets
        out.append(Tokenized([1] + torch.randint(4, vocab, (length - 1,), generator=g).tolist(),
                             [0] * cut + [1] * (length - cut)))
    return out


def loss_fn(model, batch):
    logps, _ = model(batch["input_ids"], batch["position_ids"], batch["target_index"], batch["target_ids"])
    return -logps.sum(), batch["n_targets"], {}


def main(model_dir: str, out: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    data = examples(model.config.vocab_size)
    cfg = TrainConfig(output_dir=out, max_steps=1, gradient_accumulation_steps=2, logging_steps=1, save_steps=0,
                      progress_bar=False, report_to=[], learning_rate=1e-3, warmup_ratio=0.0)
    trainer = Trainer(cfg, TokenScorer(model), loss_fn, [[[i]] for i in range(4)],
                      lambda item: collate_rows(item, data, 0))
    seen = {}
    inner = trainer.optimizer.optimizer
    original = inner.step

    def step(*args, **kwargs):
        seen.update({n.removeprefix("module."): p.grad.clone() for n, p in trainer.model.named_parameters()
                     if p.grad is not None})
        return original(*args, **kwargs)

    inner.step = step
    result = trainer.train()
    if trainer.accelerator.is_main_process:
        save_file(seen, f"{out}/grads.safetensors")
        with open(f"{out}/result.json", "w") as handle:
            json.dump({"loss": result.log_history[0]["loss"], "processes": trainer.accelerator.num_processes}, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
