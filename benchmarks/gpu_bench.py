"""GPU speed in one device call: SFT and DPO tokens/s, peak memory and MFU, ours vs TRL, on the same batches.

    python benchmarks/gpu_bench.py --out $OUT        # a CUDA machine: everything in one call (budget 7 min)
    python benchmarks/gpu_bench.py --smoke --out /tmp/gpu_bench   # CPU: tiny configs, 2 steps, checks the plumbing
    python benchmarks/gpu_bench.py --wheels          # prints what the device lacks and the command that fetches it

Models (random weights, built from a config on the GPU; speed does not depend on the weights):
  gemma-3-270m   google/gemma-3-270m's architecture: 18 layers, hidden 640, 4 heads / 1 KV head of 256, 5 sliding
                 (512) : 1 global layers, 262,144-token vocabulary, tied embeddings
  llama-1.5b     a Llama-style 1.5B: 22 layers, hidden 2048, MLP 8192, 16 heads / 8 KV heads, vocabulary 32,000
Both trainers: full fine-tuning, fp32 master weights under bf16 autocast (ours: `master_weights`; TRL: bf16=True
over fp32 weights), AdamW (ours fused on CUDA), no gradient checkpointing, sdpa attention (ours: installed as
packed attention, which picks varlen or FlexAttention on CUDA; TRL: transformers' sdpa with its packed-sequence
mask, as no flash-attn package is installed there).
Data: synthetic token ids, seeded, identical for both sides. SFT: conversations of 64..2048 tokens (log-uniform),
reply = the second half, packed best-fit into rows of --seq_len (TRL: packing_strategy "bfd", which is its
padding-free path). DPO: pairs with prompts of 32..512 and completions of 16..512 tokens; ours in the shared-prompt
layout with a frozen bf16 reference copy; TRL's DPOTrainer (padded: its padding_free is disabled in TRL 1.16)
with its own reference copy.
Measured per run, after --warmup steps: seconds per optimizer step (CUDA synchronised at each step's end, both
sides), tokens/s (SFT: real tokens; DPO: prompt + chosen + prompt + rejected per pair, the same count for both
sides though our layout encodes each prompt once), peak allocated GPU memory (torch.cuda.max_memory_allocated
from just before the model is built), MFU = model FLOPs / time / peak bf16 FLOP/s. Model FLOPs: 6 x (matmul
parameters) per trained token + causal attention (4 x visible query-key pairs x heads x head_dim per layer,
forward; x3 with the backward; sliding windows counted), the LM head on target tokens only; DPO adds the
reference's forward (2 x). Peaks: the card's dense bf16 figure (H100/H200: 989 TFLOP/s) and a measured
8192^3 bf16 matmul. Each run's row is written as soon as it finishes (results survive a timeout); runs that
would start after the time budget are recorded as skipped.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import math
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# what the device image lacks (KINDS.md lists its packages): carried as wheels, see --wheels
WHEELS = {"trl": "1.16.0", "datasets": "5.2.0", "dill": "0.4.1", "multiprocess": "0.70.19"}
NEEDED = ("torch", "transformers", "accelerate", "peft", "safetensors", "jinja2", "yaml", "tqdm", *WHEELS)
DENSE_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}

MODELS = {
    "llama-1.5b": dict(model_type="llama", vocab_size=32000, hidden_size=2048, intermediate_size=8192,
                       num_hidden_layers=22, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                       max_position_embeddings=4096, tie_word_embeddings=False),
    "gemma-3-270m": dict(model_type="gemma3_text", vocab_size=262144, hidden_size=640, intermediate_size=2048,
                         num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
                         sliding_window=512, max_position_embeddings=32768, query_pre_attn_scalar=256,
                         rope_theta=1_000_000.0, tie_word_embeddings=True,
                         layer_types=["sliding_attention"] * 5 + ["full_attention"]
                         + ["sliding_attention"] * 5 + ["full_attention"]
                         + ["sliding_attention"] * 5 + ["full_attention"]),
    # --smoke: the same two shapes, tiny
    "tiny-llama": dict(model_type="llama", vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024),
    "tiny-gemma": dict(model_type="gemma3_text", vocab_size=512, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                       sliding_window=16, max_position_embeddings=1024, query_pre_attn_scalar=16,
                       layer_types=["sliding_attention", "full_attention"], tie_word_embeddings=True),
}
# rows (SFT) or pairs (DPO) per optimizer step, one micro-batch
BATCH = {"llama-1.5b": {"sft": 8, "dpo": 8}, "gemma-3-270m": {"sft": 8, "dpo": 8},
         "tiny-llama": {"sft": 2, "dpo": 2}, "tiny-gemma": {"sft": 2, "dpo": 2}}


# ------------------------------------------------------------------------------------------------ preflight --
def missing_packages() -> list[str]:
    missing = []
    for name in NEEDED:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return missing


def wheel_command() -> str:
    pins = " ".join(f"{name}=={version}" for name, version in WHEELS.items())
    return ("echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps --only-binary=:all: "
            "--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform "
            f"manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl {pins}\n"
            "then run with carry [\".whl\"] and the command:\n"
            "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "
            ".whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && python3 benchmarks/gpu_bench.py --out $OUT")


def preflight(args) -> dict:
    """Fail in seconds, before any model is built, when something the runs need is absent."""
    missing = missing_packages()
    if missing:
        raise SystemExit(f"gpu_bench: missing packages {', '.join(missing)}; fetch the wheels with:\n{wheel_command()}")
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_bench: no CUDA device (use --smoke on a CPU)")
    from zephyr.train.attention import varlen_available

    versions = {name: importlib.metadata.version(dist) for name, dist in
                (("torch", "torch"), ("transformers", "transformers"), ("trl", "trl"), ("accelerate", "accelerate"))}
    info = {"versions": versions, "python": platform.python_version(), "varlen_attn": varlen_available()}
    if torch.cuda.is_available() and not args.smoke:
        name = torch.cuda.get_device_name()
        info.update(gpu=name, dense_bf16_tflops=next((v for k, v in DENSE_BF16_TFLOPS.items() if k in name), None),
                    measured_matmul_tflops=matmul_tflops())
    return info


def matmul_tflops(n: int = 8192, repeats: int = 10) -> float:
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12


# ------------------------------------------------------------------------------------------------ data -------
def sft_examples(n: int, vocab: int, seq_len: int, seed: int):
    from zephyr.train.packing import Tokenized

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = min(seq_len, int(math.exp(rng.uniform(math.log(64), math.log(2048)))))
        ids = [rng.randrange(4, vocab) for _ in range(length)]
        out.append(Tokenized(ids, [0] * (length // 2) + [1] * (length - length // 2)))
    return out


def dpo_pairs(n: int, vocab: int, seed: int):
    from zephyr.dpo.tokenize import TokenizedPair

    rng = random.Random(seed)

    def ids(lo, hi):
        return [rng.randrange(4, vocab) for _ in range(int(math.exp(rng.uniform(math.log(lo), math.log(hi)))))]

    return [TokenizedPair(prompt=ids(32, 512), chosen=ids(16, 512), rejected=ids(16, 512), index=i) for i in range(n)]


# ------------------------------------------------------------------------------------------------ FLOPs ------
def visible_pairs(queries: int, prefix: int, window: int | None) -> int:
    """Query-key pairs a causal piece of `queries` tokens computes after `prefix` keys it also sees."""
    total = 0
    for i in range(queries):
        seen = prefix + i + 1
        total += min(seen, window) if window else seen
    return total


def attention_flops(config, sequences: list[tuple[int, int]]) -> float:
    """Forward attention FLOPs over (queries, prefix) sequences: 2 matmuls x 2 FLOPs x pairs x heads x head_dim."""
    text = config.get_text_config()
    kinds = getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers
    width = text.num_attention_heads * text.head_dim
    total = 0
    for kind in kinds:
        window = text.sliding_window if kind == "sliding_attention" else None
        total += sum(4 * visible_pairs(q, p, window) * width for q, p in sequences)
    return total


def matmul_params(model) -> tuple[int, int]:
    """(parameters of the decoder's matmuls, of the LM head): embeddings are lookups, norms are not matmuls."""
    head = model.get_output_embeddings().weight.numel()
    decoder = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "embed" not in n
                  and "lm_head" not in n)
    return decoder, head


# ------------------------------------------------------------------------------------------------ runs -------
class StepClock:
    """Seconds of each optimizer step, CUDA synchronised at every step's end (the same for both trainers)."""

    def __init__(self, device):
        self.device, self.times = device, [time.perf_counter()]

    def tick(self, *unused):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def seconds(self, warmup: int) -> float:
        return self.times[-1] - self.times[warmup]


def build_model(name: str, device, seed: int):
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(MODELS[name])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    return model


def run_ours_sft(model, examples, items, args, device, clock):
    from functools import partial

    from zephyr.sft.loss import sft_loss
    from zephyr.train import TokenScorer, TrainConfig, Trainer, collate_rows
    from zephyr.train.precision import master_weights

    mixed = master_weights(model, torch.bfloat16 if device.type == "cuda" else torch.float32)
    cfg = TrainConfig(output_dir=tempfile.mkdtemp(), learning_rate=1e-5, lr_scheduler_type="constant",
                      warmup_ratio=0.0, max_steps=len(items), per_device_train_batch_size=args.rows,
                      logging_steps=10_000, save_steps=0, report_to=["none"], progress_bar=False, seed=args.seed,
                      compile=args.compile)
    # collated inside the step, as `zephyr sft` does (TRL's collator runs inside its steps too)
    trainer = Trainer(cfg, TokenScorer(model), sft_loss, items, partial(collate_rows, examples=examples, pad_id=0),
                      callbacks=[lambda tr, event, step: clock.tick()], mixed_precision=mixed)
    _in_order(trainer)
    trainer.train()


def _in_order(trainer) -> None:
    """Micro-batches in list order (TRL's sequential sampler), no checkpoint or final save (TRL saves none)."""
    trainer.epoch_order = lambda epoch: list(range(len(trainer.train_items)))
    trainer.save_checkpoint = lambda step: None
    trainer.save_final = lambda: None


def run_trl_sft(model, examples, args, device, clock):
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            clock.tick()

    class InOrder(SFTTrainer):
        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

    data = Dataset.from_list([{"input_ids": e.ids, "completion_mask": e.mask} for e in examples])
    targs = SFTConfig(output_dir=tempfile.mkdtemp(), learning_rate=1e-5, lr_scheduler_type="constant",
                      max_steps=args.warmup + args.steps, per_device_train_batch_size=args.rows,
                      max_length=args.seq_len, packing=True, packing_strategy="bfd", completion_only_loss=True,
                      gradient_checkpointing=False, bf16=device.type == "cuda", use_cpu=device.type == "cpu",
                      logging_steps=10_000, save_strategy="no", report_to=[], seed=args.seed, disable_tqdm=True,
                      dataloader_num_workers=0, max_grad_norm=1.0, weight_decay=0.0)
    trainer = InOrder(model=model, args=targs, train_dataset=data, processing_class=_Tokenizer(model),
                      callbacks=[Clock()])
    tokens = []
    collate = trainer.data_collator

    def counting(batch):
        out = collate(batch)
        tokens.append(int(out["input_ids"].numel()))  # padding-free: one flat row, no pad tokens
        return out

    trainer.data_collator = counting
    trainer.train()
    return tokens


def _Tokenizer(model):
    """A minimal tokenizer for TRL on pre-tokenized data: only its pad/eos ids are read."""
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1, "<unk>": 2},
                                                                               unk_token="<unk>")),
                                  pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    return tok


def run_ours_dpo(model, pairs, args, device, clock):
    from zephyr.dpo.config import DPOConfig
    from zephyr.dpo.reference import frozen_copy
    from zephyr.dpo.train import DPOObjective
    from zephyr.train import TokenScorer, Trainer
    from zephyr.train.precision import master_weights

    compute = torch.bfloat16 if device.type == "cuda" else torch.float32
    mixed = master_weights(model, compute)
    cfg = DPOConfig(model="unused", output_dir=tempfile.mkdtemp(), learning_rate=1e-6, lr_scheduler_type="constant",
                    warmup_ratio=0.0, max_steps=args.warmup + args.steps, per_device_train_batch_size=args.pairs,
                    logging_steps=10_000, save_steps=0, report_to=["none"], progress_bar=False, seed=args.seed,
                    beta=0.1, reference="copy", layout="shared", max_length=1024, compile=args.compile)
    scorer = TokenScorer(model)
    objective = DPOObjective(cfg, 0, "copy", frozen_copy(scorer, compute))
    items = [pairs[i:i + args.pairs] for i in range(0, len(pairs), args.pairs)][:args.warmup + args.steps]
    trainer = Trainer(cfg, scorer, objective.loss_fn, items, objective.collate,
                      callbacks=[lambda tr, event, step: clock.tick()], mixed_precision=mixed)
    _in_order(trainer)
    trainer.train()


def run_trl_dpo(model, pairs, args, device, clock):
    import trl
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            clock.tick()

    class PreTokenized(trl.DPOTrainer):
        def _prepare_dataset(self, dataset, *a, **k):
            return dataset

        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

    rows = [{"prompt_ids": p.prompt, "chosen_ids": p.chosen, "rejected_ids": p.rejected}
            for p in pairs[:(args.warmup + args.steps) * args.pairs]]
    targs = trl.DPOConfig(output_dir=tempfile.mkdtemp(), beta=0.1, learning_rate=1e-6, lr_scheduler_type="constant",
                          max_steps=args.warmup + args.steps, per_device_train_batch_size=args.pairs,
                          logging_steps=10_000, report_to=[], save_strategy="no", disable_tqdm=True,
                          bf16=device.type == "cuda", use_cpu=device.type == "cpu", gradient_checkpointing=False,
                          max_length=None, dataloader_drop_last=False, seed=args.seed)
    reference = copy.deepcopy(model).eval().requires_grad_(False)  # what TRL loads itself from a model id
    trainer = PreTokenized(model=model, ref_model=reference, args=targs, processing_class=_Tokenizer(model),
                           train_dataset=Dataset.from_list(rows), callbacks=[Clock()])
    trainer.train()


def measure(task: str, impl: str, name: str, args, device, info: dict) -> dict:
    """One run on a freshly built model; -> its row."""
    from zephyr.train import collate_rows, group_rows, pack

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = build_model(name, device, args.seed)
    decoder, head = matmul_params(model)
    clock = StepClock(device)
    vocab = model.config.get_text_config().vocab_size
    steps = args.warmup + args.steps
    if task == "sft":
        examples = sft_examples(args.rows * args.seq_len * (steps + 2) // 300, vocab, args.seq_len, args.seed)
        items = group_rows(pack(examples, args.seq_len), args.rows, args.seed)[:steps]
        if len(items) < steps or len(items[-1]) < args.rows:
            raise ValueError(f"only {len(items)} micro-batches of packed rows for {steps} steps")
        # the timed work as our packing lays it out; TRL packs the same examples best-fit too, so its FLOPs are
        # counted per token at the same rate
        timed = [collate_rows(item, examples, pad_id=0) for item in items[args.warmup:]]
        seqs = [(p.end - p.start, 0) for b in timed for row in b["segments"].pieces for p in row if not p.pad]
        n_tokens = sum(b["n_tokens"] for b in timed)
        flops = (6 * decoder * n_tokens + 6 * head * sum(b["n_targets"] for b in timed)
                 + 3 * attention_flops(model.config, seqs))
        if impl == "ours":
            run_ours_sft(model, examples, items, args, device, clock)
        else:
            tokens = run_trl_sft(model, examples, args, device, clock)[args.warmup:steps]
            flops, n_tokens = flops / n_tokens * sum(tokens), sum(tokens)
    else:
        pairs = dpo_pairs(args.pairs * steps, vocab, args.seed)
        (run_ours_dpo if impl == "ours" else run_trl_dpo)(model, pairs, args, device, clock)
        timed_pairs = pairs[args.warmup * args.pairs:steps * args.pairs]
        seqs = [(len(p.prompt) + len(c), 0) for p in timed_pairs for c in (p.chosen, p.rejected)]
        n_tokens = sum(q for q, _ in seqs)
        targets = sum(len(p.chosen) + len(p.rejected) for p in timed_pairs)
        # policy forward + backward, reference forward
        flops = 8 * decoder * n_tokens + 8 * head * targets + 4 * attention_flops(model.config, seqs)
    seconds = clock.seconds(args.warmup)
    row = {"task": task, "impl": impl, "model": name, "steps": args.steps, "seconds": seconds,
           "s_per_step": seconds / args.steps, "tokens_per_s": n_tokens / seconds, "model_tflops": flops / 1e12,
           "params": sum(p.numel() for p in model.parameters())}
    if device.type == "cuda":
        row["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
        for key, peak in (("mfu", info.get("dense_bf16_tflops")), ("mfu_vs_matmul", info.get("measured_matmul_tflops"))):
            row[key] = flops / seconds / (peak * 1e12) if peak else None
    del model
    return row


def table(results: dict) -> str:
    info = results["info"]
    lines = [f"# GPU benchmark: {info.get('gpu', 'cpu smoke run')}", "",
             f"torch {info['versions']['torch']}, transformers {info['versions']['transformers']}, "
             f"trl {info['versions']['trl']}; varlen_attn available: {info['varlen_attn']}; "
             f"measured bf16 matmul {info.get('measured_matmul_tflops', float('nan')):.0f} TFLOP/s", "",
             "| model | task | impl | tokens/s | s/step | peak GB | MFU (dense peak) | MFU (measured matmul) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        if "skipped" in r:
            lines.append(f"| {r['model']} | {r['task']} | {r['impl']} | skipped: {r['skipped']} | | | | |")
            continue
        pct = lambda v: f"{100 * v:.1f}%" if v else "-"  # noqa: E731
        lines.append(f"| {r['model']} | {r['task']} | {r['impl']} | {r['tokens_per_s']:,.0f} | {r['s_per_step']:.3f} | "
                     f"{r.get('peak_memory_gb', float('nan')):.1f} | {pct(r.get('mfu'))} | {pct(r.get('mfu_vs_matmul'))} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for gpu_bench.{json,md}")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny configs, 2 steps: checks the plumbing only")
    parser.add_argument("--wheels", action="store_true", help="print the wheels the device lacks and how to carry them")
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--tasks", nargs="+", default=["sft", "dpo"])
    parser.add_argument("--impls", nargs="+", default=["ours", "trl"])
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (kernels, allocator, compile)")
    parser.add_argument("--seq_len", type=int, default=None, help="SFT row length in tokens")
    parser.add_argument("--compile", action="store_true", help="ours with TrainConfig.compile (decoder layers)")
    parser.add_argument("--budget_s", type=float, default=420.0, help="start no run after this many seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.wheels:
        print(f"needed on the device, absent from its image: {WHEELS}\n{wheel_command()}")
        return 0
    start = time.perf_counter()
    args.models = args.models or (["tiny-llama", "tiny-gemma"] if args.smoke else ["llama-1.5b", "gemma-3-270m"])
    args.steps = args.steps or (2 if args.smoke else 10)
    args.warmup = args.warmup or (1 if args.smoke else 3)
    args.seq_len = args.seq_len or (256 if args.smoke else 2048)
    info = preflight(args)
    device = torch.device("cpu" if args.smoke else "cuda")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "_smoke" if args.smoke else ""
    results = {"info": info, "args": {k: v for k, v in vars(args).items()}, "runs": []}
    for name in args.models:
        for task in args.tasks:
            for impl in args.impls:
                run_args = argparse.Namespace(**vars(args), rows=BATCH[name]["sft"], pairs=BATCH[name]["dpo"])
                if time.perf_counter() - start > args.budget_s:
                    results["runs"].append({"model": name, "task": task, "impl": impl, "skipped": "time budget"})
                else:
                    try:
                        row = measure(task, impl, name, run_args, device, info)
                    except Exception as error:  # noqa: BLE001 - one failed run must not lose the others
                        row = {"model": name, "task": task, "impl": impl, "skipped": f"{type(error).__name__}: {error}"[:300]}
                    results["runs"].append(row)
                    print(json.dumps(row), flush=True)
                (out / f"gpu_bench{tag}.json").write_text(json.dumps(results, indent=1))
                (out / f"gpu_bench{tag}.md").write_text(table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
