"""Why int4 AWQ costs so much perplexity on the embedded gemma-3-270m: weight-grid analysis and one-variable
quantization experiments.

    python benchmarks/awq_investigation.py [--only grid,awq-g32-sym,...] [--list] [--sft_model DIR]
        [--keep DIR] [--eval_tokens 8192] [--window 256] [--threads 1]

Two parts, each a named entry; `--only` runs some and merges them into the existing results, so the slow
calibrations can be run a few at a time:

- `grid` (weights only, seconds): the embedded model's float32 weights are dequantized from a Q4_K_M GGUF. For
  every decoder Linear layer it counts the distinct values in each 32-weight block of a row (the block size of
  Q4_K sub-blocks, Q5_0 and Q8_0; 16 or fewer means the block lies exactly on a 4-bit grid), names the GGUF type
  the tensor came from, and measures the relative squared weight error of round-to-nearest int4 min-max
  schemes (symmetric/asymmetric, group 128/32) -- the error a calibration-free quantizer starts from.
  The same for the merged demo SFT model when `--sft_model` names one (a LoRA merge moves every weight).
- experiments (minutes each): one setting changed at a time from `zephyr quantize awq`'s defaults (AWQ, int4,
  symmetric, group 128, 64 demo dialogues of <= 512 tokens, LM head unquantized), each written by
  `zephyr.quantize.awq.write_compressed` (llm-compressor in its managed environment), reloaded by
  transformers and scored by `zephyr.quantize.check`'s perplexity code on the same token windows of
  UltraFeedback chat text as benchmarks/quantize_quality.py (calibration from train_1000.jsonl, evaluation on
  eval_200.jsonl of ../shared/data/ultrafeedback_binarized_sample), against the float32 model.

Writes benchmarks/results/awq_investigation.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "awq_investigation"
DEFAULT = dict(method="awq", group_size=128, symmetric=True, num_samples=64, max_seq_length=512, ignore=(),
               observer="", model="embedded")
TEXTS: dict[str, Path] = {}  # "calibration" and "eval": conversation files written by main()
FIRST_LAST = ("re:.*layers\\.0\\..*", "re:.*layers\\.17\\..*")


def experiment(name: str, variable: str, **change) -> dict:
    return {"name": name, "variable": variable, **DEFAULT, **change}


EXPERIMENTS = [
    experiment("float32", "unquantized", method="none"),
    experiment("awq-g128-sym", "default (zephyr quantize awq before this investigation)"),
    experiment("rtn-g128-sym", "method: round-to-nearest, no calibration", method="rtn"),
    experiment("gptq-g128-sym", "method: GPTQ", method="gptq"),
    experiment("awq-g128-asym", "asymmetric (zero point)", symmetric=False),
    experiment("awq-g32-sym", "group size 32", group_size=32),
    experiment("rtn-g32-sym", "round-to-nearest, group 32", method="rtn", group_size=32),
    experiment("gptq-g32-sym", "GPTQ, group 32", method="gptq", group_size=32),
    experiment("rtn-g32-asym", "round-to-nearest, asymmetric, group 32 (the Q4_K sub-block shape)",
               method="rtn", group_size=32, symmetric=False),
    experiment("awq-g32-asym", "asymmetric, group 32", group_size=32, symmetric=False),
    experiment("gptq-g32-asym", "GPTQ, asymmetric, group 32", method="gptq", group_size=32, symmetric=False),
    experiment("awq+gptq-g128-sym", "AWQ rescaling, then GPTQ rounding", method="awq+gptq"),
    experiment("awq+gptq-g32-sym", "AWQ rescaling, then GPTQ rounding, group 32", method="awq+gptq",
               group_size=32),
    experiment("awq-g128-sym-n128", "calibration: 128 samples", num_samples=128),
    experiment("awq-g128-sym-n16-len256", "calibration: 16 samples of <= 256 tokens", num_samples=16,
               max_seq_length=256),
    experiment("awq-g128-sym-keep-v-down", "v_proj and down_proj unquantized",
               ignore=("re:.*v_proj$", "re:.*down_proj$")),
    experiment("awq-g128-sym-keep-first-last", "first and last decoder layers unquantized", ignore=FIRST_LAST),
    experiment("awq-g128-sym-mse", "weight observer: memoryless_mse (clipping search per group)",
               observer="memoryless_mse"),
    experiment("awq-g32-sym-mse", "group 32 and the memoryless_mse observer (AWQ's own clipping search)",
               group_size=32, observer="memoryless_mse"),
    experiment("awq-g32-sym-keep-first-last", "group 32, first and last decoder layers unquantized",
               group_size=32, ignore=FIRST_LAST),
    experiment("sft-float32", "merged demo SFT model (LoRA merge: no weight on the 4-bit grid), unquantized",
               model="sft", method="none"),
    experiment("sft-awq-g128-sym", "merged demo SFT model, default AWQ", model="sft"),
    experiment("sft-gptq-g128-sym", "merged demo SFT model, GPTQ", model="sft", method="gptq"),
    experiment("sft-rtn-g128-sym", "merged demo SFT model, round-to-nearest", model="sft", method="rtn"),
]


def label(e: dict) -> str:
    scheme = f"w4 g{e['group_size']} {'sym' if e['symmetric'] else 'asym'}"
    return "float32" if e["method"] == "none" else f"{e['method']} {scheme}"


# ---------------------------------------------------------------------------------------------- weight grid


def gguf_types(path: Path) -> dict[str, str]:
    """GGUF tensor name (blk.N.attn_q...) -> its quantization type."""
    import gguf

    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}


GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def distinct_per_block(weight, block: int = 32):
    """Distinct values in each `block`-wide run of a row (Q4_K sub-blocks, Q5_0 and Q8_0 blocks are 32 wide)."""
    blocks = weight.reshape(-1, block).sort(dim=1).values
    return 1 + (blocks[:, 1:] != blocks[:, :-1]).sum(dim=1)


def rtn_error(weight, group: int, symmetric: bool) -> float:
    """Relative squared error ||W - Q(W)||^2 / ||W||^2 of int4 min-max round-to-nearest per group of a row."""
    import torch

    w = weight.reshape(-1, group)
    if symmetric:
        scale = (w.abs().amax(dim=1, keepdim=True) / 7.5).clamp(min=1e-12)  # llm-compressor's int4 range [-8, 7]
        q = (w / scale).round().clamp(-8, 7) * scale
    else:
        low = w.amin(dim=1, keepdim=True).clamp(max=0)
        high = w.amax(dim=1, keepdim=True).clamp(min=0)
        scale = ((high - low) / 15).clamp(min=1e-12)
        zero = (-low / scale).round()
        q = ((w / scale).round() + zero).clamp(0, 15).sub(zero) * scale
    return float(((w - q) ** 2).sum() / (w ** 2).sum())


SCHEMES = [("sym g128", 128, True), ("asym g128", 128, False), ("sym g32", 32, True), ("asym g32", 32, False)]


def weight_grid(folder: Path, gguf_file: Path | None) -> dict:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    types = gguf_types(gguf_file) if gguf_file else {}
    by_kind: dict[str, dict] = {}
    for name, weight in sorted(tensors.items()):
        parts = name.split(".")
        if "layers" not in parts or parts[-1] != "weight" or parts[-2] not in GGUF_NAMES:
            continue
        layer, kind = parts[parts.index("layers") + 1], parts[-2]
        counts = distinct_per_block(weight.float())
        gguf_type = types.get(f"blk.{layer}.{GGUF_NAMES[kind]}.weight", "-")
        entry = by_kind.setdefault(f"{kind} ({gguf_type})" if types else kind,
                                   {"tensors": 0, "blocks": 0, "distinct_sum": 0, "at_most_16": 0,
                                    "error_sum": {s: 0.0 for s, _, _ in SCHEMES}})
        entry["tensors"] += 1
        entry["blocks"] += counts.numel()
        entry["distinct_sum"] += int(counts.sum())
        entry["at_most_16"] += int((counts <= 16).sum())
        for scheme, group, symmetric in SCHEMES:
            entry["error_sum"][scheme] += rtn_error(weight.float(), group, symmetric)
    rows = []
    for kind, e in by_kind.items():
        rows.append({"tensors": kind, "count": e["tensors"], "mean_distinct_per_32": e["distinct_sum"] / e["blocks"],
                     "blocks_at_most_16_percent": 100.0 * e["at_most_16"] / e["blocks"],
                     **{f"rtn_error_{s.replace(' ', '_')}_percent": 100.0 * v / e["tensors"]
                        for s, v in e["error_sum"].items()}})
    return {"model": str(folder), "rows": rows}


# ---------------------------------------------------------------------------------------------- experiments


def run_experiment(e: dict, folders: dict, work: Path, evaluation_for) -> dict:
    from zephyr.models import ModelConfig, load_tokenizer
    from zephyr.quantize.awq import calibration_texts, check_awq, write_compressed
    from zephyr.quantize.check import reference_perplexity

    folder = folders[e["model"]]
    config = ModelConfig(model=str(folder), chat_template="auto")
    tokenizer = load_tokenizer(config)
    template = config.chat_template
    evaluation = evaluation_for(e["model"], tokenizer, template)
    started = time.time()
    if e["method"] == "none":
        return {"perplexity": reference_perplexity(folder, template, evaluation), "seconds": time.time() - started,
                "eval": evaluation.description}
    texts = calibration_texts(TEXTS["calibration"], template, tokenizer.eos_token or "", e["num_samples"], tokenizer)
    out = work / e["name"]
    write_compressed(folder, out, tokenizer, texts, e["method"], e["group_size"], e["symmetric"],
                     e["max_seq_length"], e["ignore"], e["observer"])
    seconds = time.time() - started
    size = sum(p.stat().st_size for p in out.glob("*.safetensors")) / 2**20
    result = {"seconds": seconds, "size_mb": size, "eval": evaluation.description}
    try:
        result["perplexity"], result["sample"] = check_awq(out, template, evaluation)
        result["loads_in_zephyr_transformers"] = True
    except RuntimeError as err:  # asymmetric (zero-point) checkpoints: see score_in_writer_env
        result["loads_in_zephyr_transformers"] = False
        result["load_error"] = str(err).strip().splitlines()[-1]
        result["perplexity"] = score_in_writer_env(out, evaluation.chunks)
        result["scored_by"] = "llm-compressor environment's transformers"
    return result


SCORE = """
import json, sys, torch
from transformers import AutoModelForCausalLM
from zephyr.perplexity import hf_perplexity
job = json.load(open(sys.argv[1]))
model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32).eval()
print(json.dumps({"perplexity": hf_perplexity(model, job["chunks"])}))
"""


def score_in_writer_env(folder: Path, chunks: list[list[int]]) -> float:
    """Perplexity with the transformers + compressed-tensors that wrote the checkpoint (llm-compressor's
    managed environment), by the same code on the same windows: zephyr's own, newer transformers cannot load
    asymmetric int4 checkpoints (their packed zero points mismatch the shapes it allocates)."""
    import subprocess

    from zephyr.cache import LLM_COMPRESSOR, ensure

    job = folder / "score-job.json"
    job.write_text(json.dumps({"model": str(folder), "chunks": chunks}))
    done = subprocess.run([str(ensure(LLM_COMPRESSOR)), "-c", SCORE, str(job)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    job.unlink()
    return json.loads(done.stdout.strip().splitlines()[-1])["perplexity"]


def loads(run: dict) -> str:
    if "loads_in_zephyr_transformers" not in run:
        return "-"
    if run["loads_in_zephyr_transformers"]:
        return "yes"
    return f"no ({run['load_error']}); scored in the llm-compressor environment"


def markdown(results: dict) -> str:
    meta, lines = results["meta"], []
    lines += ["# Why AWQ w4 costs perplexity on the embedded gemma-3-270m", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    grid = results.get("grid")
    if grid:
        for which, data in grid.items():
            lines += ["", f"## Weight grid: {which} ({data['model']})", "",
                      "Distinct values per 32-weight block of a row (16 or fewer: exactly on a 4-bit grid) and the "
                      "relative squared weight error of int4 min-max round-to-nearest, mean over the tensors.", "",
                      "| tensors (GGUF type) | count | distinct / 32 | blocks <= 16 | sym g128 | asym g128 | "
                      "sym g32 | asym g32 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for r in data["rows"]:
                lines.append(f"| {r['tensors']} | {r['count']} | {r['mean_distinct_per_32']:.1f} | "
                             f"{r['blocks_at_most_16_percent']:.0f}% | {r['rtn_error_sym_g128_percent']:.2f}% | "
                             f"{r['rtn_error_asym_g128_percent']:.2f}% | {r['rtn_error_sym_g32_percent']:.2f}% | "
                             f"{r['rtn_error_asym_g32_percent']:.2f}% |")
    runs = results.get("experiments", {})
    if runs:
        lines += ["", "## Experiments (one variable at a time)", "",
                  "| experiment | model | setting changed | scheme | calibration | perplexity | change | seconds | "
                  "loads in zephyr's transformers |", "|---|---|---|---|---|---:|---:|---:|---|"]
        for e in EXPERIMENTS:
            r = runs.get(e["name"])
            if not r:
                continue
            reference = runs.get("sft-float32" if e["model"] == "sft" else "float32", {}).get("perplexity")
            change = f"{100.0 * (r['perplexity'] / reference - 1.0):+.1f}%" if reference else "-"
            calibration = "-" if e["method"] in ("none", "rtn") else f"{e['num_samples']} x <= {e['max_seq_length']}"
            lines.append(f"| {e['name']} | {e['model']} | {e['variable']} | {label(e)} | {calibration} | "
                         f"{r['perplexity']:.3f} | {change} | {r['seconds']:.0f} | {loads(r)} |")
        lines += ["", "Reference (float32, transformers): embedded "
                  f"{runs.get('float32', {}).get('perplexity', float('nan')):.3f}"
                  + (f", merged SFT {runs['sft-float32']['perplexity']:.3f}" if "sft-float32" in runs else "")
                  + ". Seconds: calibration and save (unquantized rows: scoring), wall time."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated entry names (default: all)")
    parser.add_argument("--list", action="store_true", help="print the entries and exit")
    parser.add_argument("--sft_model", default="", help="a merged (LoRA-free) SFT checkpoint of gemma-3-270m to "
                                                        "repeat the measurements on, e.g. runs/demo/sft-merged")
    parser.add_argument("--eval_tokens", type=int, default=8192)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keep", default="", help="keep the quantized checkpoints in this folder")
    args = parser.parse_args()
    names = ["grid"] + [e["name"] for e in EXPERIMENTS]
    if args.list:
        print("\n".join(names))
        return
    chosen = [n for n in args.only.split(",") if n] or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"--only: unknown {unknown}; --list shows the names")

    import torch

    from zephyr.embedded import embedded_checkpoint, gguf_path
    from zephyr.quantize.check import eval_set

    from quantize_quality import UF_SAMPLE, conversations

    torch.set_num_threads(args.threads)
    text_dir = Path(tempfile.mkdtemp(prefix="awq-investigation-text-"))
    TEXTS.update(calibration=conversations(UF_SAMPLE / "train_1000.jsonl", text_dir),
                 eval=conversations(UF_SAMPLE / "eval_200.jsonl", text_dir))
    folders = {"embedded": embedded_checkpoint()}
    if args.sft_model:
        folders["sft"] = Path(args.sft_model).resolve()
    results = json.loads(OUT.with_suffix(".json").read_text()) if OUT.with_suffix(".json").exists() else {}
    results["meta"] = {"model": "google/gemma-3-270m (embedded; weights dequantized from Q4_K_M)",
                       "sft_model": "the demo pipeline's merged SFT model (zephyr demo: LoRA SFT on "
                                    "zephyr/demo_data, merged)" if args.sft_model else "-",
                       "calibration": "ultrafeedback_binarized_sample/train_1000.jsonl (prompt + chosen reply) "
                                      "rendered with the chat template",
                       "eval": f"ultrafeedback_binarized_sample/eval_200.jsonl, {args.eval_tokens} tokens in "
                               f"windows of {args.window}",
                       "machine": f"{platform.machine()}, {args.threads} thread(s), load average at the start "
                                  f"{os.getloadavg()[0]:.2f} (other work on this machine is named in the README)",
                       "date": time.strftime("%Y-%m-%d", time.gmtime())}
    evaluations = {}

    def evaluation_for(model, tokenizer, template):
        if model not in evaluations:
            evaluations[model] = eval_set(tokenizer, template, str(TEXTS["eval"]), args.window, args.eval_tokens)
        return evaluations[model]

    if "grid" in chosen:
        results["grid"] = {"embedded": weight_grid(folders["embedded"], gguf_path())}
        if "sft" in folders:
            results["grid"]["merged SFT"] = weight_grid(folders["sft"], None)
        print(json.dumps(results["grid"], indent=1), flush=True)
    with tempfile.TemporaryDirectory(prefix="awq-investigation-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        for e in EXPERIMENTS:
            if e["name"] not in chosen or (e["model"] not in folders):
                continue
            run = {**run_experiment(e, folders, work, evaluation_for),
                   "setting": {k: v for k, v in e.items() if k != "name"}}
            print(json.dumps({e["name"]: run}), flush=True)
            results.setdefault("experiments", {})[e["name"]] = run
            results = save(results, chosen)  # keep what finished; save returns a new dict
    results = save(results, chosen)
    print(markdown(results))


def save(results: dict, chosen: list[str]) -> dict:
    """Merge this run's entries into the results file as it is now (another run may have added its own)."""
    path = OUT.with_suffix(".json")
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged["meta"] = results["meta"]
    if "grid" in chosen:
        merged["grid"] = results["grid"]
    merged.setdefault("experiments", {}).update({k: v for k, v in results.get("experiments", {}).items()
                                                 if k in chosen})
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(merged, indent=1))
    OUT.with_suffix(".md").write_text(markdown(merged))
    return merged


if __name__ == "__main__":
    main()
