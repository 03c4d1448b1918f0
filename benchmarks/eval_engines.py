"""How fast does `zephyr eval` answer a benchmark? The same IFEval prompts, greedy, answered by the embedded
gemma-3-270m through `--engine generate` (transformers' generate on fixed batches) and `--engine transformers`
(zephyr serve's batched decoder, every prompt in flight), each with --batch_size replies decoding together.
Reports seconds, the ratio, how many replies are identical, and the IFEval numbers of each (Google's checkers).

    python benchmarks/eval_engines.py --ifeval_data ../shared/data/ifeval/input_data.jsonl --prompts 32

Results: benchmarks/results/eval_engines[_TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUMBERS = ("prompt_level_strict", "prompt_level_loose", "instruction_level_strict", "instruction_level_loose")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ifeval_data", required=True, help="IFEval input_data.jsonl")
    parser.add_argument("--prompts", type=int, default=32, help="prompts spread evenly over the 541")
    parser.add_argument("--max_new_tokens", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--engines", nargs="+", default=["generate", "transformers"])
    parser.add_argument("--machine", default=platform.processor() or platform.machine(),
                        help="what to call this machine in the results")
    parser.add_argument("--tag", default="")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    import torch

    from zephyr.eval import ifeval
    from zephyr.eval.cli import EvalConfig
    from zephyr.eval.generator import make_generator

    rows = ifeval.fixed_subset(ifeval.load_prompts(args.ifeval_data), args.prompts)
    conversations = [[{"role": "user", "content": r["prompt"]}] for r in rows]
    runs = {}
    for engine in args.engines:
        config = EvalConfig(benchmark="ifeval", model=args.model, engine=engine, temperature=0.0,
                            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
        generate = make_generator(config)
        try:
            start = time.perf_counter()
            replies = generate(conversations)
            seconds = time.perf_counter() - start
        finally:
            generate.close()
        scores = ifeval.summarize([ifeval.check(r, reply) for r, reply in zip(rows, replies)])
        runs[engine] = {"seconds": round(seconds, 1), "replies": replies, **{k: scores[k] for k in NUMBERS},
                        "mean_reply_words": round(sum(len(r.split()) for r in replies) / len(replies), 1)}
        print(engine, runs[engine]["seconds"], "s", flush=True)

    first, *others = args.engines
    report = {"settings": {"prompts": len(rows), "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                           "model": args.model, "greedy": True, "machine": args.machine,
                           "threads": torch.get_num_threads()},
              "runs": runs,
              "ratio_vs_" + first: {e: round(runs[first]["seconds"] / runs[e]["seconds"], 2) for e in others},
              "identical_replies_vs_" + first: {e: sum(a == b for a, b in zip(runs[first]["replies"], runs[e]["replies"]))
                                                for e in others}}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "eval_engines" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# zephyr eval engines: {len(rows)} IFEval prompts, greedy, up to {args.max_new_tokens} new tokens, "
             f"batch {args.batch_size}, {args.model}, {args.machine}, {torch.get_num_threads()} threads", "",
             "| engine | seconds | speed-up | identical replies | prompt strict | prompt loose | instruction strict "
             "| instruction loose | mean reply words |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for engine, run in runs.items():
        ratio = report["ratio_vs_" + first].get(engine, 1.0)
        same = report["identical_replies_vs_" + first].get(engine, len(rows))
        lines.append(f"| {engine} | {run['seconds']} | {ratio:.2f}x | {same}/{len(rows)} | "
                     + " | ".join(f"{run[k]:.1f}" for k in NUMBERS) + f" | {run['mean_reply_words']} |")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
