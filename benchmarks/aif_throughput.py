"""Completions per second of `zephyr aif`'s pool step: plain transformers `generate` vs our path.

    nice -n 10 python benchmarks/aif_throughput.py [--prompts 16] [--tokens 32] [--batch 8] [--rounds 1]

Both sides: the embedded model (google/gemma-3-270m) with the same weights object, the same prompts (the first
`--prompts` of ../shared/data/ultrafeedback_binarized_sample/train_1000.jsonl, each with an UltraFeedback
helpfulness principle as system message, rendered by the engine's chat template into the same token ids), the
same sampling (UltraFeedback's: temperature 1, top-p 1, no top-k) and exactly `--tokens` new tokens per
completion (end-of-turn ignored on both sides, so both generate the same number of tokens).
  * plain: `model.generate` over left-padded batches of `--batch` prompts (what `zephyr generate`, the
    former pool step, does; default 8 as its --batch_size).
  * ours: the pool step's path (`zephyr.aif.answer`): zephyr serve's transformers engine (continuous batching,
    top-k before top-p), every completion in flight at once, up to --max_num_seqs decoded together.
Timed: generation only (loading excluded), segments alternated plain/ours per round; the medians are reported.
Writes benchmarks/results/aif_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
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
    model, pad = engine.model, engine.tokenizer.pad_token_id
    torch.manual_seed(seed)
    start = time.perf_counter()
    for first in range(0, len(ids), batch):
        chunk = ids[first:first + batch]
        width = max(map(len, chunk))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in chunk])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in chunk])
        out = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0,
                             top_k=None, max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=pad)
        assert out.shape[1] - width == tokens
    return time.perf_counter() - start


def ours(engine, conversations: list[list[dict]], tokens: int, seed: int) -> float:
    from zephyr.sampling import Sampling
    from zephyr.serve.engine import generate

    async def one(messages, i):
        prompt = engine.chat_prompt(messages)
        sampling = Sampling(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=tokens, seed=seed + i)
        steps = [step async for step in generate(engine, prompt, sampling, stop_ids=())]
        assert steps[-1].tokens == tokens

    async def everything():
        await asyncio.gather(*(one(m, i) for i, m in enumerate(conversations)))

    start = time.perf_counter()
    asyncio.run(everything())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max_num_seqs", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    from zephyr.aif.answer import Engines
    from zephyr.aif.pool import parse_answerer

    answerer = parse_answerer("embedded,engine=transformers", {"temperature": 1.0, "top_p": 1.0, "top_k": 0,
                                                                 "max_new_tokens": args.tokens})
    conversations = prompts(args.prompts)
    with Engines(max_num_seqs=args.max_num_seqs) as engines:
        engine = engines.get(answerer)
        ids = [engine.chat_prompt(m).ids for m in conversations]
        ours(engine, conversations[:2], 2, 0)  # warm-up of both paths
        plain(engine, ids[:2], 2, 2, 0)
        times = {"plain": [], "ours": []}
        for r in range(args.rounds):
            times["plain"].append(plain(engine, ids, args.tokens, args.batch, r))
            times["ours"].append(ours(engine, conversations, args.tokens, r))
        dtype = str(next(engine.model.parameters()).dtype)
    rate = {k: args.prompts / statistics.median(v) for k, v in times.items()}
    result = {
        "model": "embedded (google/gemma-3-270m)", "dtype": dtype, "prompts": args.prompts,
        "new_tokens_per_completion": args.tokens, "plain_batch": args.batch, "max_num_seqs": args.max_num_seqs,
        "rounds": args.rounds, "seconds": times, "completions_per_s": rate,
        "ratio_ours_over_plain": rate["ours"] / rate["plain"],
        "prompt_tokens": [len(x) for x in ids], "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "cuda": torch.cuda.is_available(),
    }
    name = "aif_throughput" + (f"_{args.tag}" if args.tag else "")
    out = HERE / "results"
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text(
        "| path | completions/s | median s |\n|---|---:|---:|\n"
        f"| plain transformers `generate`, batches of {args.batch} | {rate['plain']:.3f} | "
        f"{statistics.median(times['plain']):.1f} |\n"
        f"| ours (serve's transformers engine, continuous batching) | {rate['ours']:.3f} | "
        f"{statistics.median(times['ours']):.1f} |\n\n"
        f"Ratio ours / plain: **{result['ratio_ours_over_plain']:.2f}x** ({args.prompts} prompts x {args.tokens} "
        f"new tokens, {dtype}, {result['machine']}, {result['torch_threads']} torch threads).\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
