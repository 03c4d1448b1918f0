"""Ours vs TRL's DPOTrainer: same model, data, tokens, batch, max_length and threads, alternating in one run.

    python benchmarks/dpo_vs_trl.py                      # both models, results in benchmarks/results/
    python benchmarks/dpo_vs_trl.py --models tiny --rounds 1 --steps 2 --warmup 1   # a quick check

Models: a tiny Mistral (hidden 256, 4 layers, fp32, full fine-tuning, frozen reference copy on both sides; a
byte-level BPE tokenizer of Mistral's vocabulary size, 32,000, trained on the benchmark's own text, so that tokens
are about as long as a real tokenizer's and the LM head has its real width; `--tiny_vocab 512` gives the small
test tokenizer instead, whose near-byte tokens make rows long and the head negligible) and
the embedded gemma-3-270m (LoRA r=16, bf16 weights unless `--dtype float32`, precomputed reference log-probs on
both sides). Data: the
UltraFeedback sample of ../shared/data, tokenised once by us and fed to both trainers as token ids, in the same
order (no shuffling), so both do the same work. Each measurement runs in a fresh subprocess (so peak memory is
its own); rounds alternate which implementation goes first. Timed: the optimizer steps after `--warmup`
(reference precomputation, model loading and saving excluded for both).

tokens/s counts what TRL's batches hold without padding: prompt + chosen and prompt + rejected per pair (ours
encodes the prompt once; the count is the same so that it measures the same work). Peak memory: on CUDA
`max_memory_allocated` over the timed steps; on CPU the peak resident set size sampled every 10 ms during the
timed steps (both sides hold the same weights and optimizer, so the difference is activations and logits).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ultrafeedback_binarized_sample" / "train_1000.jsonl"
MODELS = {
    "tiny": {"desc": "tiny Mistral (hidden 256, 4 layers, vocab {vocab}), full fine-tuning, {dtype}", "lora": False,
             "dtype": "float32"},
    "gemma": {"desc": "gemma-3-270m (embedded), LoRA r=16, {dtype}, precomputed reference", "lora": True,
              "dtype": "bfloat16"},
}


# ----------------------------------------------------------------------------------------------- worker --
class PeakMemory:
    """Peak memory over a window: CUDA allocator stats, or the sampled RSS on CPU."""

    def __init__(self, device: str):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def start(self):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        import psutil

        process = psutil.Process()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, process.memory_info().rss)
                time.sleep(0.01)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**30
        self._stop.set()
        self._thread.join()
        return self.peak / 2**30


class StepClock:
    """Timestamps at the end of every optimizer step; memory window opened after the warmup steps."""

    def __init__(self, warmup: int, memory: PeakMemory):
        self.warmup, self.memory, self.times = warmup, memory, []

    def tick(self, step: int):
        if self.memory.device == "cuda":
            import torch

            torch.cuda.synchronize()
        self.times.append(time.perf_counter())
        if step == self.warmup:
            self.memory.start()


def preference_rows(path: Path) -> list[dict]:
    """All pairs of a preference file as the data layer reads them: {prompt: [messages], chosen, rejected}."""
    from zephyr.data import DataConfig, load_preference_splits

    return load_preference_splits(DataConfig(dataset_mixer={str(path): 1.0}, test_split_size=0)).train


def corpus_texts(path: Path):
    """Every prompt and reply of a preference file: the text the tiny model's tokenizer is trained on."""
    for row in preference_rows(path):
        yield from (message["content"] for message in row["prompt"])
        yield row["chosen"]
        yield row["rejected"]


def load_pairs(args, tokenizer, template):
    from zephyr.dpo.tokenize import tokenize_pairs

    needed = (args.warmup + args.steps) * args.batch
    rows = preference_rows(args.data)[:needed]
    pairs, _ = tokenize_pairs(rows, tokenizer, template, args.max_length, args.max_prompt_length)
    if len(pairs) < needed:
        raise SystemExit(f"only {len(pairs)} pairs for {needed} needed")
    for i, p in enumerate(pairs):
        p.index = i
    return pairs


def worker(args) -> dict:
    import torch

    from zephyr.dpo.config import DPOConfig

    torch.set_num_threads(args.threads)
    spec = MODELS[args.model]
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    cfg = DPOConfig(model=args.model_path, dtype=args.dtype or spec["dtype"], use_lora=spec["lora"], lora_r=16,
                    lora_alpha=32, lora_dropout=0.0, reference="precompute" if spec["lora"] else "copy",
                    layout=args.layout,
                    ref_cache_dir=args.cache, per_device_train_batch_size=args.batch, beta=0.1,
                    learning_rate=1e-6, lr_scheduler_type="constant", warmup_ratio=0.0,
                    max_steps=args.warmup + args.steps, logging_steps=1, save_steps=0, report_to=[],
                    progress_bar=False, output_dir=tempfile.mkdtemp(), max_length=args.max_length,
                    max_prompt_length=args.max_prompt_length, chat_template="zephyr")
    from zephyr.models import load_tokenizer

    tokenizer = load_tokenizer(cfg)
    pairs = load_pairs(args, tokenizer, cfg.chat_template)
    batches = [pairs[i * args.batch:(i + 1) * args.batch] for i in range(args.warmup + args.steps)]
    timed = [p for b in batches[args.warmup:] for p in b]
    tokens = sum(2 * len(p.prompt) + len(p.chosen) + len(p.rejected) for p in timed)
    padded = sum(2 * len(b) * max(len(p.prompt) + max(len(p.chosen), len(p.rejected)) for p in b)
                 for b in batches[args.warmup:])
    shared = sum(len(p.prompt) + len(p.chosen) + len(p.rejected) for p in timed)  # what our rows hold
    memory = PeakMemory(device)
    clock = StepClock(args.warmup, memory)
    losses = (run_ours if args.impl == "ours" else run_trl)(args, cfg, tokenizer, pairs, batches, clock, device)
    peak = memory.stop()
    seconds = clock.times[-1] - clock.times[args.warmup - 1]
    return {"impl": args.impl, "model": args.model, "device": device, "threads": args.threads, "batch": args.batch,
            "steps": args.steps, "seconds": seconds, "s_per_step": seconds / args.steps,
            "tokens_per_s": tokens / seconds, "pairs_per_s": len(timed) / seconds, "peak_memory_gb": peak,
            "trl_padding_share": 1 - tokens / padded, "work_ratio": padded / shared, "losses": losses}


def run_ours(args, cfg, tokenizer, pairs, batches, clock, device):
    import torch

    from zephyr.dpo.reference import cache_key, frozen_copy, precompute, weights_fingerprint
    from zephyr.dpo.train import DPOObjective
    from zephyr.models import load_model, resolve
    from zephyr.train.precision import autocast, master_weights
    from zephyr.train.scoring import TokenScorer
    from zephyr.train.trainer import Trainer

    torch.manual_seed(0)
    model = load_model(cfg, tokenizer, for_training=True).to(device)
    dtype = model.config.dtype
    mixed_precision = master_weights(model, dtype, cfg.low_precision_weights)  # as `zephyr dpo` trains
    model = TokenScorer(model, chunk_size=cfg.logit_chunk_size)
    mode = cfg.reference_mode()
    ref_model = frozen_copy(model, dtype) if mode == "copy" else None
    table = None
    if mode == "precompute":
        key = cache_key(pairs, weights_fingerprint(resolve(cfg.model)[0]), cfg.dtype, "bench")
        with autocast(device, mixed_precision):
            table = precompute(model, pairs, cfg.ref_cache_dir, key, batch_size=args.batch, adapter_off=True)
    objective = DPOObjective(cfg, tokenizer.pad_token_id, mode, ref_model, table)
    trainer = Trainer(cfg, model, objective.loss_fn, batches, objective.collate,
                      callbacks=[lambda tr, event, step: clock.tick(step)], mixed_precision=mixed_precision)
    trainer.epoch_order = lambda epoch: list(range(len(batches)))  # TRL's order: no shuffling
    result = trainer.train()
    return [r["loss"] for r in result.log_history if "loss" in r]


def run_trl(args, cfg, tokenizer, pairs, batches, clock, device):
    import torch
    import trl
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback

    from zephyr.models import load_model, lora_config

    class PreTokenized(trl.DPOTrainer):
        def _prepare_dataset(self, dataset, *a, **k):
            return dataset

        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

    class Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):
            clock.tick(state.global_step)

    torch.manual_seed(0)
    model = load_model(dataclass_replace(cfg, use_lora=False), tokenizer).to(device)
    rows = [{"prompt_ids": p.prompt, "chosen_ids": p.chosen, "rejected_ids": p.rejected} for b in batches for p in b]
    targs = trl.DPOConfig(output_dir=tempfile.mkdtemp(), beta=cfg.beta, learning_rate=cfg.learning_rate,
                          lr_scheduler_type="constant", max_steps=cfg.max_steps, per_device_train_batch_size=args.batch,
                          logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True, bf16=False,
                          gradient_checkpointing=False, max_length=None, use_cpu=device == "cpu",
                          precompute_ref_log_probs=cfg.use_lora, precompute_ref_batch_size=args.batch,
                          dataloader_drop_last=False, seed=cfg.seed)
    trainer = PreTokenized(model=model, args=targs, processing_class=tokenizer, train_dataset=Dataset.from_list(rows),
                           peft_config=lora_config(cfg) if cfg.use_lora else None, callbacks=[Clock()])
    trainer.train()
    return [r["loss"] for r in trainer.state.log_history if "loss" in r]


def dataclass_replace(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


# ----------------------------------------------------------------------------------------------- parent --
def measure(args, impl: str, model: str, model_path: str, cache: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--model", model, "--model_path", model_path, "--cache", cache,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batches[model]),
           "--threads", str(args.threads), "--max_length", str(args.max_length),
           "--max_prompt_length", str(args.max_prompt_length), "--data", str(args.data), "--layout", args.layout]
    if args.cpu:
        cmd.append("--cpu")
    if args.dtype:
        cmd += ["--dtype", args.dtype]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"{impl} on {model} failed:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


def summarise(runs: list[dict], args) -> dict:
    out = {}
    for model in args.model_list:
        dtype = {"float32": "fp32", "bfloat16": "bf16"}.get(args.dtype or MODELS[model]["dtype"], args.dtype)
        row = {"desc": MODELS[model]["desc"].format(vocab=f"{args.tiny_vocab:,}", dtype=dtype),
               "batch": args.batches[model]}
        for impl in ("ours", "trl"):
            mine = [r for r in runs if r["model"] == model and r["impl"] == impl]
            row[impl] = {k: statistics.median(r[k] for r in mine)
                         for k in ("tokens_per_s", "s_per_step", "pairs_per_s", "peak_memory_gb")}
        row["speedup_tokens_per_s"] = row["ours"]["tokens_per_s"] / row["trl"]["tokens_per_s"]
        row["memory_ratio"] = row["ours"]["peak_memory_gb"] / row["trl"]["peak_memory_gb"]
        row["trl_padding_share"] = statistics.median(r["trl_padding_share"] for r in runs if r["model"] == model)
        row["work_ratio"] = statistics.median(r["work_ratio"] for r in runs if r["model"] == model)
        first = [r for r in runs if r["model"] == model]
        ours_l = next(r["losses"] for r in first if r["impl"] == "ours")
        trl_l = next(r["losses"] for r in first if r["impl"] == "trl")
        row["max_loss_rel_diff"] = max(abs(a - b) / max(abs(b), 1e-9) for a, b in zip(ours_l, trl_l))
        out[model] = row
    return out


def markdown(summary: dict, args, runs: list[dict]) -> str:
    device = runs[0]["device"] if runs else "?"
    lines = [f"# DPO: zephyr vs TRL DPOTrainer ({device}, {args.threads} threads)", "",
             f"Data: {args.data.name}, max_length {args.max_length}, max_prompt_length {args.max_prompt_length}, "
             f"{args.steps} timed steps after {args.warmup} warm-up, {args.rounds} rounds alternating, medians. "
             f"Layout (ours): {args.layout}. Token ratio: the tokens in TRL's padded rows over those in ours (prompt "
             "once, no padding) - the speed-up that removing the waste alone gives where time is proportional to "
             "tokens.", "",
             "| model | batch | ours tokens/s | TRL tokens/s | speed-up | ours s/step | TRL s/step | ours peak GB | "
             "TRL peak GB | memory ratio | TRL padding | token ratio | max loss diff |",
             "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for model, r in summary.items():
        lines.append(f"| {r['desc']} | {r['batch']} | {r['ours']['tokens_per_s']:.0f} | {r['trl']['tokens_per_s']:.0f} | "
                     f"{r['speedup_tokens_per_s']:.2f}x | {r['ours']['s_per_step']:.2f} | {r['trl']['s_per_step']:.2f} | "
                     f"{r['ours']['peak_memory_gb']:.2f} | {r['trl']['peak_memory_gb']:.2f} | {r['memory_ratio']:.2f} | "
                     f"{r['trl_padding_share']:.0%} | {r['work_ratio']:.2f}x | {r['max_loss_rel_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,gemma")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps first (at least 1: the clock and the memory window start at the end "
                             "of the last one)")
    parser.add_argument("--batch", type=int, default=0, help="pairs per step (0: 8 for tiny, 4 for gemma)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max_length", type=int, default=1024)
    parser.add_argument("--max_prompt_length", type=int, default=512)
    parser.add_argument("--layout", default="shared")
    parser.add_argument("--dtype", default="", choices=["", "float32", "bfloat16"],
                        help="weights' dtype for every model (default: fp32 for tiny, bf16 for gemma)")
    parser.add_argument("--tiny_vocab", type=int, default=32000,
                        help="the tiny model's vocabulary: its tokenizer is trained on --data to this size (Mistral's: "
                             "32000); 512 = the tests' fixed-text tokenizer")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even when a GPU is present")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--tag", default="", help="suffix of the results files")
    # worker mode
    parser.add_argument("--worker", choices=["ours", "trl"])
    parser.add_argument("--model", choices=list(MODELS))
    parser.add_argument("--model_path")
    parser.add_argument("--cache")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be at least 1: timing and peak memory start at the end of the last warmup step")
    if args.worker:
        args.impl = args.worker
        print(json.dumps(worker(args)), flush=True)
        return
    args.model_list = [m for m in args.models.split(",") if m]
    args.batches = {m: args.batch or (8 if m == "tiny" else 4) for m in args.model_list}
    sys.path.insert(0, str(REPO))  # the tiny test models live in tests/fixtures/
    from tests.fixtures.tiny import tiny_checkpoint

    work = Path(tempfile.mkdtemp(prefix="dpo-bench-"))
    corpus = None if args.tiny_vocab <= 512 else list(corpus_texts(args.data))
    paths = {"tiny": str(tiny_checkpoint("mistral", work / "tiny", hidden=256, layers=4, vocab_size=args.tiny_vocab,
                                         corpus=corpus)), "gemma": "embedded"}
    runs = []
    for round_ in range(args.rounds):
        for model in args.model_list:
            order = ("ours", "trl") if round_ % 2 == 0 else ("trl", "ours")
            for impl in order:
                result = measure(args, impl, model, paths[model], str(work / "cache"))
                result["round"] = round_
                runs.append(result)
                print(f"round {round_} {model:5s} {impl:4s}: {result['tokens_per_s']:8.1f} tokens/s "
                      f"{result['s_per_step']:.2f} s/step peak {result['peak_memory_gb']:.2f} GB", flush=True)
    summary = summarise(runs, args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "dpo_vs_trl" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{stem}.json").write_text(json.dumps({"summary": summary, "runs": runs,
                                                        "args": {k: str(v) for k, v in vars(args).items()}}, indent=1))
    (args.out / f"{stem}.md").write_text(markdown(summary, args, runs))
    print(markdown(summary, args, runs))


if __name__ == "__main__":
    main()
