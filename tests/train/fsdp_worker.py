"""Run by test_fsdp.py under `torchrun --nproc_per_node 2` with the model sharded by zephyr.train.fsdp (the
trainer's `fsdp: true` path, as on GPUs).

`sft`: 2 processes x 2 accumulated micro-batches per step, 4 steps, with gradient checkpointing (as the 7B recipes).
- out/straight: the 4 steps in one run (final model written consolidated by the trainer).
- out/resumed: killed after step 3 (checkpoint-2 on disk, sharded state), then resumed to step 4.
- out/result.json (rank 0): the losses per step of both runs, the number of processes, whether all was sharded.

`dpo` / `dpo-lora`: `run_dpo` (the `zephyr dpo` stage) on the demo pairs, 2 processes x 2 pairs per step,
2 steps, into out/dpo; full weights with a frozen copy as reference, or LoRA with the adapter-off reference.
`dpo-bf16`: full weights loaded as bfloat16 (the 7B recipes): fp32 masters, bf16 autocast.
out/result.json (rank 0): the losses per step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.distributed.tensor import DTensor, Shard
from transformers import AutoModelForCausalLM

from zephyr.train import TokenScorer, TrainConfig, Trainer, Tokenized, collate_rows

from ddp_worker import loss_fn  # the SFT token loss, summed (this folder is on sys.path: run as a script)

STEPS = 4
ITEMS = [[[i]] for i in range(8)]  # 8 micro-batches of one conversation: 2 steps per epoch at 4 per step


def examples(vocab: int) -> list[Tokenized]:
    g = torch.Generator().manual_seed(3)
    out = []
    for _ in range(len(ITEMS)):
        length = int(torch.randint(6, 30, (1,), generator=g))  # different target counts per conversation
        cut = int(torch.randint(2, length - 1, (1,), generator=g))
        out.append(Tokenized([1] + torch.randint(4, vocab, (length - 1,), generator=g).tolist(),
                             [0] * cut + [1] * (length - cut)))
    return out




def config(out: str, gradient_accumulation_steps: int, fsdp: bool, resume: bool = False) -> TrainConfig:
    cfg = TrainConfig(output_dir=out, max_steps=STEPS, gradient_accumulation_steps=gradient_accumulation_steps,
                      learning_rate=1e-3, warmup_ratio=0.0, lr_scheduler_type="linear", logging_steps=1,
                      save_steps=2, save_total_limit=0, resume=resume, progress_bar=False, report_to=[], seed=7,
                      gradient_checkpointing=fsdp)  # as the 7B recipes: recomputed layers under FSDP too
    cfg.fsdp = fsdp
    return cfg


def trainer(model_dir: str, cfg: TrainConfig, callbacks=()) -> Trainer:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    data = examples(model.config.vocab_size)
    return Trainer(cfg, TokenScorer(model), loss_fn, ITEMS, lambda item: collate_rows(item, data, 0),
                   callbacks=callbacks)


class Kill(Exception):
    pass


def kill_after(k: int):
    def callback(trainer, event, step):
        if event == "step_end" and step == k:
            raise Kill(step)
    return callback


def losses(result) -> list[float]:
    return [r["loss"] for r in result.log_history if "loss" in r]


def dpo_config(model_dir: str, out: str, gradient_accumulation_steps: int, lora: bool = False,
               dtype: str = "float32"):
    from zephyr.config import parse_args
    from zephyr.dpo.config import DPOConfig

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "dpo.yaml"
    cfg = parse_args(DPOConfig, ["--config", str(recipe), "--model", model_dir, "--dtype", dtype,
                                 "--use_lora", str(lora).lower(), "--reference", "adapter" if lora else "copy",
                                 "--output_dir", out,
                                 "--max_steps", "2", "--per_device_train_batch_size", "2",
                                 "--gradient_accumulation_steps", str(gradient_accumulation_steps),
                                 "--learning_rate", "1e-3", "--warmup_ratio", "0", "--logging_steps", "1",
                                 "--max_eval_samples", "4", "--progress_bar", "false"])
    cfg.fsdp = gradient_accumulation_steps == 1  # the 2-process run shards, the 1-process reference does not
    return cfg


def main_dpo(model_dir: str, out: str, lora: bool = False, dtype: str = "float32") -> None:
    from zephyr.dpo.train import run_dpo

    run = run_dpo(dpo_config(model_dir, f"{out}/dpo", 1, lora, dtype))
    if torch.distributed.get_rank() == 0:
        with open(f"{out}/result.json", "w") as handle:
            json.dump({"processes": torch.distributed.get_world_size(), "losses": losses(run.result)}, handle)


def main(model_dir: str, out: str) -> None:
    straight = trainer(model_dir, config(f"{out}/straight", 2, fsdp=True))
    straight_result = straight.train()
    try:
        trainer(model_dir, config(f"{out}/resumed", 2, fsdp=True), callbacks=[kill_after(3)]).train()
    except Kill:
        pass
    resumed = trainer(model_dir, config(f"{out}/resumed", 2, fsdp=True, resume=True))
    resumed_result = resumed.train()
    sharded = all(isinstance(p, DTensor) and p.placements == (Shard(0),) for p in straight.model.parameters())
    if straight.accelerator.is_main_process:
        with open(f"{out}/result.json", "w") as handle:
            json.dump({"processes": straight.accelerator.num_processes, "sharded": sharded,
                       "straight": losses(straight_result),
                       "resumed": losses(resumed_result)}, handle)


if __name__ == "__main__":
    stages = {"sft": main, "dpo": main_dpo, "dpo-lora": lambda model_dir, out: main_dpo(model_dir, out, lora=True),
              "dpo-bf16": lambda model_dir, out: main_dpo(model_dir, out, dtype="bfloat16")}
    stages[sys.argv[3]](sys.argv[1], sys.argv[2])
