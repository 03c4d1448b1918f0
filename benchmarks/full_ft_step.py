"""Full fine-tuning step time of the embedded gemma-3-270m on the demo SFT rows: what freezing the tied
embedding/LM head, PyTorch's fused CPU AdamW and keeping the fused head's logits memory between calls each save.

    nice .venv/bin/python benchmarks/full_ft_step.py                  # writes benchmarks/results/full_ft_step.*
    .venv/bin/python benchmarks/full_ft_step.py --steps 2 --rounds 1 --out /tmp/bench   # smoke run

Gemma 3 270M has a 262k-token vocabulary: its tied embedding/head is 168M of the 270M weights. Training it
means an fp32 head matmul (the fp32 master weight is what the fused head sees), a vocabulary-sized weight
gradient, and AdamW over 168M more values every step. The fused head computes each chunk's logits ([262k, 512]
fp32, 0.5 GB, and a bf16 copy for a bf16 head) in memory it keeps between calls (zephyr/train/chunked_lm_head.py);
the "allocated per call" variant hands it fresh memory every time instead, as the plain allocation would: on the
CPU each such tensor is a fresh mmap whose pages the kernel faults in and zeroes (minor page faults per step are
counted). Each variant runs the trainer's step on the demo recipe's first packed micro-batches (2 rows of 512
tokens, bf16 autocast over fp32 master weights where the CPU computes in bf16): forward through zephyr's
TokenScorer, backward, gradient clipping, AdamW, zero_grad. Variants alternate round by round on freshly loaded
models, so slow drifts of a shared machine hit all of them; the first step of each segment is a warm-up and is
not counted.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from zephyr.train import chunked_lm_head

ROOT = Path(__file__).resolve().parents[1]
KEPT_MEMORY = chunked_lm_head._scratch  # zephyr's own: the same memory every call
VARIANTS = {  # name -> (freeze the embeddings/head, fused AdamW, keep the head's logits memory)
    "all weights, per-tensor AdamW": (False, False, True),
    "all weights, fused AdamW": (False, True, True),
    "frozen embeddings, fused AdamW, head logits memory allocated per call": (True, True, False),
    "frozen embeddings, fused AdamW": (True, True, True),
}


def fresh_memory(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.empty(numel, dtype=dtype, device=device)


def segment(freeze: bool, fused: bool, keep: bool, steps: int) -> tuple[list[float], list[int]]:
    """Seconds and minor page faults of each of `steps` optimizer steps on a freshly loaded model."""
    from zephyr.config import parse_args
    from zephyr.models import load_tokenizer
    from zephyr.sft import stage
    from zephyr.sft.config import SFTConfig
    from zephyr.train import PackStats, TokenScorer, collate_rows
    from zephyr.train.precision import autocast, master_weights

    cfg = parse_args(SFTConfig, ["--config", str(ROOT / "recipes" / "demo" / "sft.yaml"),
                                 "--freeze_embeddings", str(freeze).lower()])
    tokenizer = load_tokenizer(cfg)
    model, train, _, _, stats = stage.prepare(cfg, tokenizer)
    items = stage.packed_items(train, cfg, cfg.per_device_train_batch_size, cfg.seed, PackStats())
    mixed = master_weights(model, model.config.dtype)
    scorer, params = TokenScorer(model), [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, fused=fused or None)
    chunked_lm_head._SCRATCH.clear()
    chunked_lm_head._scratch = KEPT_MEMORY if keep else fresh_memory
    model.train()
    seconds, faults = [], []
    for item in items[:steps]:
        batch = collate_rows(item, examples=train, pad_id=tokenizer.pad_token_id or 0, flat=False)
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        with autocast("cpu", mixed):
            logps, _ = scorer(batch["input_ids"], batch["position_ids"], batch["target_index"],
                              batch["target_ids"], segments=batch.get("segments"))
        (-logps.sum() / batch["n_targets"]).backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
    chunked_lm_head._scratch = KEPT_MEMORY
    return seconds, faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per segment (the first is warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all variants, in alternating order")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    timed, faulted = {name: [] for name in VARIANTS}, {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            steps, faults = segment(*VARIANTS[name], args.steps)
            timed[name] += steps[1:]
            faulted[name] += faults[1:]
            print(f"round {round_ + 1} {name}: " + " ".join(f"{s:.2f}" for s in steps), flush=True)
    base = statistics.median(timed[next(iter(VARIANTS))])
    results = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "steps": args.steps, "rounds": args.rounds,
               "variants": {name: {"median_s_per_step": statistics.median(s), "speedup": base / statistics.median(s),
                                   "median_minor_faults": statistics.median(faulted[name]), "s_per_step": s,
                                   "minor_faults": faulted[name]} for name, s in timed.items()}}
    lines = ["| variant | s/step (median) | speed-up | minor page faults per step |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {v['median_s_per_step']:.2f} | {v['speedup']:.2f}x | {v['median_minor_faults']:,.0f} |"
              for name, v in results["variants"].items()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "full_ft_step.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "full_ft_step.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
