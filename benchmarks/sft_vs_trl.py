"""SFT speed: zephyr's trainer vs TRL's SFTTrainer (packing on), same model, data, batch, length and threads.

    nice .venv/bin/python benchmarks/sft_vs_trl.py                      # both models, writes benchmarks/results/
    .venv/bin/python benchmarks/sft_vs_trl.py --models tiny --steps 3 --rounds 1 --out /tmp/bench   # smoke run

One process; the two trainers alternate (ours, TRL, then TRL, ours, ... so slow drifts of a shared machine hit
both), each segment on a freshly loaded model. Per segment we record the per-step losses, the real (non-pad)
tokens and seconds of every optimizer step, and the peak resident memory (RSS sampled every 5 ms by a thread,
reported as the rise above the RSS just before the model was loaded). Tokens/s and s/step skip the first step
(warm-up). Models: a tiny Mistral built from a config (hidden 256, 4 layers, fp32, full fine-tuning) and the
embedded gemma-3-270m (bf16, LoRA r=16 on all linear layers). Data: prompt + chosen of the UltraFeedback
sample in ../shared/data as single-turn conversations, tokenized once (zephyr template) and handed to both
trainers as the same ids, loss on the reply tokens only (TRL: input_ids + completion_mask columns).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ultrafeedback_binarized_sample" / "train_1000.jsonl"

MODELS = {  # name -> settings shared by both trainers (batch = packed rows per step, seq_len = tokens per row)
    "tiny": dict(label="tiny Mistral (hidden 256, 4 layers), fp32, full", lora=False, dtype="float32", lr=1e-3,
                 batch=4, seq_len=1024, steps=12),
    "gemma": dict(label="gemma-3-270m (embedded), bf16, LoRA r=16", lora=True, dtype="bfloat16", lr=2e-4,
                  batch=2, seq_len=512, steps=10),
}


class PeakRSS:
    """Peak resident set size while the block runs, sampled by a background thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.process = interval, psutil.Process()

    def __enter__(self):
        gc.collect()
        try:  # hand freed heap back to the OS so the baseline is not inflated by the previous segment
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.baseline = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def conversations(n: int) -> list[list[dict]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:n]]
    return [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["chosen"]}] for r in rows]


def model_source(name: str, workdir: Path) -> str:
    if name == "tiny":
        sys.path.insert(0, str(ROOT))  # the tiny test models live in tests/fixtures/
        from tests.fixtures.tiny import tiny_checkpoint

        return str(tiny_checkpoint("mistral", workdir / "tiny-mistral", hidden=256, layers=4))
    return "embedded"


def model_config(name: str, source: str):
    from zephyr.models import LoraModelConfig

    spec = MODELS[name]
    return LoraModelConfig(model=source, dtype=spec["dtype"], chat_template="zephyr", use_lora=spec["lora"], lora_r=16,
                           lora_alpha=32, lora_dropout=0.05)


def tokenized(tokenizer, convs, seq_len):
    """Conversations -> token ids + reply masks (zephyr template), cut to one row; shared by both trainers."""
    from zephyr.chat_template import render_ids
    from zephyr.train import Tokenized, truncate

    return truncate([Tokenized(*render_ids(c, tokenizer, "zephyr")) for c in convs], seq_len)


def run_ours(name, source, convs, args, workdir) -> dict:
    from zephyr.models import load_model, load_tokenizer
    from zephyr.sft.loss import sft_loss
    from zephyr.train import TokenScorer, TrainConfig, Trainer, collate_rows, group_rows, pack
    from zephyr.train.precision import master_weights

    mcfg = model_config(name, source)
    with PeakRSS() as memory:
        tokenizer = load_tokenizer(mcfg)
        examples = tokenized(tokenizer, convs, args.seq_len)
        items = group_rows(pack(examples, args.seq_len), args.batch, args.seed)
        model = load_model(mcfg, tokenizer, for_training=True)
        cfg = TrainConfig(output_dir=str(workdir / "ours"), learning_rate=MODELS[name]["lr"], lr_scheduler_type="cosine",
                          warmup_ratio=0.1, max_steps=args.steps, per_device_train_batch_size=args.batch,
                          logging_steps=1, save_steps=0, report_to=[],
                          progress_bar=False, seed=args.seed)
        mixed_precision = master_weights(model, model.config.dtype)  # as `zephyr sft` trains
        trainer = Trainer(cfg, TokenScorer(model, chunk_size=cfg.logit_chunk_size), sft_loss, items,
                          lambda item: collate_rows(item, examples, tokenizer.pad_token_id or 0),
                          mixed_precision=mixed_precision)
        # TRL runs with save_strategy="no": skip our checkpoint and final save too, so neither writes to disk
        trainer.save_checkpoint = lambda step: None
        trainer.save_final = lambda: None
        result = trainer.train()
    records = [r for r in result.log_history if "loss" in r]
    steps = [{"loss": r["loss"], "seconds": r["seconds_per_step"], "tokens": r["tokens_per_s"] * r["seconds_per_step"]}
             for r in records]
    del trainer, model
    return {"steps": steps, "peak_rss": memory.peak, "baseline_rss": memory.baseline}


def run_trl(name, source, convs, args, workdir) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from zephyr.models import load_model, load_tokenizer, lora_config

    mcfg = model_config(name, source)
    timings: list[float] = []
    tokens: list[int] = []

    class StepClock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            self.last = time.perf_counter()

        def on_step_end(self, *a, **k):
            now = time.perf_counter()
            timings.append(now - self.last)
            self.last = now

    with PeakRSS() as memory:
        tokenizer = load_tokenizer(mcfg)
        # the very token ids and reply masks our trainer gets (render_ids puts Gemma's <bos> first, which TRL's own
        # chat-template tokenization leaves out), so both optimise the same objective on the same tokens
        data = Dataset.from_list([{"input_ids": e.ids, "completion_mask": e.mask}
                                  for e in tokenized(tokenizer, convs, args.seq_len)])
        # the LoRA adapter is added by TRL from the same LoraConfig; the base loads exactly as ours does
        model = load_model(model_config(name, source).__class__(**{**mcfg.__dict__, "use_lora": False}), tokenizer)
        sft_args = SFTConfig(output_dir=str(workdir / "trl"), learning_rate=MODELS[name]["lr"],
                             lr_scheduler_type="cosine", warmup_steps=0.1, max_steps=args.steps,
                             per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
                             max_length=args.seq_len, packing=True, packing_strategy="bfd", completion_only_loss=True,
                             gradient_checkpointing=False, bf16=False, use_cpu=True, logging_steps=1,
                             save_strategy="no", report_to=[], seed=args.seed, dataloader_num_workers=0,
                             max_grad_norm=1.0, weight_decay=0.0, disable_tqdm=True)
        trainer = SFTTrainer(model=model, args=sft_args, train_dataset=data, processing_class=tokenizer,
                             peft_config=lora_config(mcfg) if MODELS[name]["lora"] else None,
                             callbacks=[StepClock()])
        collate = trainer.data_collator

        def counting(batch):
            out = collate(batch)
            tokens.append(int(out["input_ids"].numel()))  # padding-free: one flat row, no pad tokens
            return out

        trainer.data_collator = counting
        trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    steps = [{"loss": loss, "seconds": s, "tokens": t} for loss, s, t in zip(losses, timings, tokens)]
    del trainer, model
    return {"steps": steps, "peak_rss": memory.peak, "baseline_rss": memory.baseline}


def settings(args: argparse.Namespace, name: str) -> argparse.Namespace:
    """The command line's values, with each model's own batch / seq_len / steps where none was given."""
    resolved = argparse.Namespace(**vars(args))
    for key in ("batch", "seq_len", "steps"):
        if getattr(resolved, key) is None:
            setattr(resolved, key, MODELS[name][key])
    return resolved


def summarise(segments: list[dict]) -> dict:
    timed = [s for seg in segments for s in seg["steps"][1:]]  # skip each segment's warm-up step
    seconds = sum(s["seconds"] for s in timed)
    return {"tokens_per_s": sum(s["tokens"] for s in timed) / seconds, "seconds_per_step": seconds / len(timed),
            "tokens_per_step": statistics.mean(s["tokens"] for s in timed),
            "peak_rss_gb": max(seg["peak_rss"] - seg["baseline_rss"] for seg in segments) / 1e9,
            "peak_rss_abs_gb": max(seg["peak_rss"] for seg in segments) / 1e9,
            "first_losses": [s["loss"] for s in segments[0]["steps"][:10]],
            "segments_tokens_per_s": [sum(s["tokens"] for s in seg["steps"][1:]) /
                                      max(sum(s["seconds"] for s in seg["steps"][1:]), 1e-9) for seg in segments]}


def markdown(results: dict, meta: dict) -> str:
    lines = ["# SFT speed: zephyr vs TRL SFTTrainer (packing)", "",
             f"{meta['cpu']}, {meta['threads']} threads, torch {meta['torch']}, transformers {meta['transformers']}, "
             f"trl {meta['trl']}. {meta['rounds']} segments per trainer, alternating; "
             f"{meta['samples']} UltraFeedback dialogues (prompt + chosen).", "",
             "| model | batch x length, steps | trainer | tokens/s | s/step | tokens/step | peak RSS rise (GB) | "
             "mean loss, steps 1-10 |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        for who in ("zephyr", "trl"):
            s = r[who]
            lines.append(f"| {MODELS[name]['label']} | {r['batch']} x {r['seq_len']}, {r['steps']} | {who} | {s['tokens_per_s']:.0f} | {s['seconds_per_step']:.2f} | "
                         f"{s['tokens_per_step']:.0f} | {s['peak_rss_gb']:.2f} | {statistics.mean(s['first_losses']):.4f} |")
        lines.append(f"| | | **ratio** | **{r['speedup']:.2f}x** | | | {r['memory_ratio']:.2f}x | "
                     f"{r['loss_gap_pct']:+.2f}% (max {r['max_step_loss_gap_pct']:.1f}% per step) |")
    lines += ["", "ratio: tokens/s ours / TRL; memory: our peak RSS rise / TRL's; loss: mean of the first 10 step "
              "losses, ours vs TRL (the two trainers pack and shuffle rows differently, so single steps see "
              "different dialogues)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,gemma")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per segment (default: per model)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="packed rows per step (default: per model)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per packed row (default: per model)")
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                        help="weights of both trainers (default: per model; bf16 is emulated, so slow, on AVX2 CPUs)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--tag", default="", help="suffix of the results files")
    base_args = parser.parse_args()
    args = base_args
    if args.dtype:
        word = {"float32": "fp32", "bfloat16": "bf16"}[args.dtype]
        for spec in MODELS.values():
            spec["label"] = spec["label"].replace("bf16", word).replace("fp32", word)
            spec["dtype"] = args.dtype
    torch.set_num_threads(args.threads)
    import transformers
    import trl

    convs = conversations(args.samples)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in args.models.split(","):
            source = model_source(name, workdir)
            args = settings(base_args, name)
            segments = {"zephyr": [], "trl": []}
            for round_index in range(args.rounds):
                order = ("zephyr", "trl") if round_index % 2 == 0 else ("trl", "zephyr")
                for who in order:
                    run = run_ours if who == "zephyr" else run_trl
                    segment = run(name, source, convs, args, workdir / f"{name}-{who}-{round_index}")
                    segments[who].append(segment)
                    last = summarise([segment])
                    print(f"{name} round {round_index} {who}: {last['tokens_per_s']:.0f} tokens/s, "
                          f"{last['seconds_per_step']:.2f} s/step, peak RSS +{last['peak_rss_gb']:.2f} GB", flush=True)
            ours, theirs = summarise(segments["zephyr"]), summarise(segments["trl"])
            mean_ours, mean_trl = statistics.mean(ours["first_losses"]), statistics.mean(theirs["first_losses"])
            results[name] = {"zephyr": ours, "trl": theirs, "speedup": ours["tokens_per_s"] / theirs["tokens_per_s"],
                             "batch": args.batch, "seq_len": args.seq_len, "steps": args.steps,
                             "memory_ratio": ours["peak_rss_gb"] / max(theirs["peak_rss_gb"], 1e-9),
                             "loss_gap_pct": 100 * (mean_ours - mean_trl) / mean_trl, "label": MODELS[name]["label"],
                             "max_step_loss_gap_pct": 100 * max(abs(a - b) / b for a, b in
                                                                zip(ours["first_losses"], theirs["first_losses"]))}
    meta = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": trl.__version__, "rounds": args.rounds,
            "samples": args.samples}
    try:
        meta["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line)
    except (OSError, StopIteration):
        pass
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "sft_vs_trl" + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (out / f"{stem}.md").write_text(markdown(results, meta))
    print(markdown(results, meta))


if __name__ == "__main__":
    main()
