"""Completions per second of `zephyr aif`'s pool step: plain transformers `generate` vs the pool step itself.

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/aif_throughput.py [--prompts 16] [--tokens 32] [--batch 8]
        [--rounds 1] [--threads CORES] [--paths plain,transformers,llama.cpp] [--tag NAME]

Every path: the embedded model (google/gemma-3-270m, shipped as a Q4_K_M GGUF file), the same prompts (the first
`--prompts` of ../shared/data/ultrafeedback_binarized_sample/train_1000.jsonl, each with an UltraFeedback
helpfulness principle as system message, rendered by the engine's chat template; the token ids are checked equal
across paths and recorded), the same sampling (UltraFeedback's: temperature 1, top-p 1, no top-k) and exactly
`--tokens` new tokens per completion (end of turn ignored everywhere; the pool step's token counts are checked).
  * plain: `model.generate` over left-padded batches of `--batch` prompts (what `zephyr generate` does, default 8
    as its --batch_size), on the transformers engine's model (the GGUF dequantised, bf16 or fp32 as `auto`) with
    transformers' SDPA attention (the engine's own decode path, zephyr/serve/decode_attention.py, is switched off
    for this path).
  * transformers: the pool step (`zephyr.aif.answer.replies`) on zephyr serve's transformers engine (continuous
    batching), every completion in flight at once, up to --max_num_seqs decoded together.
  * llama.cpp: the same pool step on zephyr serve's llama.cpp engine (batched decoder) reading the embedded
    model's own GGUF file (`embedded,engine=llama.cpp`): the same weights, not dequantised.
Threads: torch and llama.cpp both get --threads. Timed: generation only (loading excluded), paths alternated
within each round; medians reported, with the load average before and after.
Writes benchmarks/results/aif_throughput[_TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent.parent / "shared" / "data" / "ultrafeedback_binarized_sample" / "train_1000.jsonl"
UF_DIR = HERE.parent.parent / "shared" / "data" / "ultrafeedback"


def prompts(n: int) -> list[list[dict]]:
    from zephyr.aif import ultrafeedback

    principle = ultrafeedback.load(os.environ.get("UF_DIR", str(UF_DIR)))["principles"]["helpfulness"][0]
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:n]]
    return [[{"role": "system", "content": principle}, {"role": "user", "content": r["prompt"]}] for r in rows]


@torch.inference_mode()
def plain(engine, ids: list[list[int]], tokens: int, batch: int, seed: int) -> float:
    """Stock transformers: `generate` with SDPA attention (the engine's decoder switches its model to zephyr's
    decode attention; switched back here for the plain path only, outside the timed part)."""
    model, pad = engine.model, engine.tokenizer.pad_token_id
    ours = model.config._attn_implementation
    model.set_attn_implementation("sdpa")
    torch.manual_seed(seed)
    start = time.perf_counter()
    for first in range(0, len(ids), batch):
        chunk = ids[first:first + batch]
        width = max(map(len, chunk))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in chunk])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in chunk])
        out = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0,
                             top_k=0, max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=pad)
        assert out.shape[1] - width == tokens
    seconds = time.perf_counter() - start
    model.set_attn_implementation(ours)
    return seconds


def pool_step(engines, answerer, conversations: list[list[dict]], tokens: int, seed: int) -> float:
    """The pool step itself (`zephyr.aif.answer.replies`), every completion running to `tokens` new tokens."""
    from zephyr.aif.answer import Job, replies

    answerer = dataclasses.replace(answerer, max_new_tokens=tokens)  # the same loaded engine
    jobs = [Job(i, answerer, m, seed * 1000 + i) for i, m in enumerate(conversations)]
    engines.new_tokens.clear()
    start = time.perf_counter()
    replies(engines, jobs)
    seconds = time.perf_counter() - start
    assert engines.new_tokens == {job.index: tokens for job in jobs}, engines.new_tokens
    return seconds


PATHS = {
    "plain": "plain transformers `generate`, batches of {batch}",
    "transformers": "pool step on serve's transformers engine (continuous batching)",
    "llama.cpp": "pool step on serve's llama.cpp engine (batched decoder, the model's own GGUF file)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max_num_seqs", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch and llama.cpp threads")
    parser.add_argument("--paths", default=",".join(PATHS), help="which of plain, transformers, llama.cpp to time")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    paths = args.paths.split(",")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    from zephyr.aif.answer import Engines
    from zephyr.aif.pool import parse_answerer

    sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": args.tokens}
    answerers = {path: parse_answerer(f"embedded,engine={path}", sampling) for path in ("transformers", "llama.cpp")}
    conversations = prompts(args.prompts)
    with Engines(max_num_seqs=args.max_num_seqs, threads=args.threads, ignore_end_of_turn=True) as engines:
        engine = engines.get(answerers["transformers"])  # plain generate runs on this engine's model
        ids = [engine.chat_prompt(m).ids for m in conversations]
        same_ids = {}
        for path in paths:  # warm-up; the prompts must be the same token ids on every path
            if path == "plain":
                plain(engine, ids[:2], 2, 2, 0)
            else:
                pool_step(engines, answerers[path], conversations[:2], 2, 0)
                same_ids[path] = [engines.get(answerers[path]).chat_prompt(m).ids for m in conversations] == ids
        times = {path: [] for path in paths}
        for r in range(args.rounds):
            for path in paths:
                times[path].append(plain(engine, ids, args.tokens, args.batch, r) if path == "plain" else
                                   pool_step(engines, answerers[path], conversations, args.tokens, r))
        dtype = str(next(engine.model.parameters()).dtype)
    load_after = os.getloadavg()
    rate = {k: args.prompts / statistics.median(v) for k, v in times.items()}
    ratio = {k: rate[k] / rate["plain"] for k in rate if k != "plain"} if "plain" in rate else {}
    result = {
        "model": "embedded (google/gemma-3-270m, Q4_K_M GGUF; transformers dequantised to " + dtype + ")",
        "prompts": args.prompts, "new_tokens_per_completion": args.tokens, "plain_batch": args.batch,
        "max_num_seqs": args.max_num_seqs, "rounds": args.rounds, "seconds": times, "completions_per_s": rate,
        "ratio_over_plain": ratio, "same_prompt_ids_as_plain": same_ids,
        "prompt_tokens": [len(x) for x in ids], "threads": args.threads,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "cuda": torch.cuda.is_available(),
        "load_average_1_5_15min": {"before": load_before, "after": load_after},
    }
    name = "aif_throughput" + (f"_{args.tag}" if args.tag else "")
    out = HERE / "results"
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    rows = "".join(f"| {PATHS[k].format(batch=args.batch)} | {rate[k]:.3f} | {statistics.median(times[k]):.1f} | "
                   f"{f'{ratio[k]:.2f}x' if k in ratio else '1.00x' if k == 'plain' else '-'} |\n" for k in paths)
    (out / f"{name}.md").write_text(
        "| path | completions/s | median s | vs plain |\n|---|---:|---:|---:|\n" + rows +
        f"\n{args.prompts} prompts x {args.tokens} new tokens each (end of turn ignored on every path), "
        f"{args.rounds} round(s), {result['machine']}, {args.threads} threads "
        f"(OMP_NUM_THREADS={result['OMP_NUM_THREADS'] or 'unset'}); load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.2f}' for x in load_before)} before, {', '.join(f'{x:.2f}' for x in load_after)} after.\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
