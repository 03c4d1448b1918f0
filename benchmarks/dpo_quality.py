"""Does DPO help? SFT then DPO of the embedded gemma-3-270m on 1,000 real UltraFeedback pairs (LoRA, CPU), then
preference figures on the 200 held-out pairs of eval_200.jsonl, for the SFT model (the reference) and the DPO
model.

    python benchmarks/dpo_quality.py                         # the full run, results in benchmarks/results/
    python benchmarks/dpo_quality.py --max_steps 2 --train_pairs 16 --eval_pairs 8 --tag check   # a quick check

SFT trains on the pairs' prompt + chosen reply (the dSFT stand-in: the chosen replies are the better-rated
UltraFeedback completions); DPO then trains on the pairs with the SFT model as reference (its log-probs computed
once and cached). Both run through `zephyr run`'s stages with the demo recipes' settings (LoRA r=16, dtype auto),
overridden here only for the data, the lengths and, for a check, the step count. Reported on the held-out pairs:
- preference accuracy: share of pairs where the model's summed log-prob of the chosen reply beats the rejected
  one's (any model; SFT vs DPO directly comparable);
- rewards/accuracies and rewards/margins of the DPO model against the SFT model (the DPO metric; the SFT model
  measured against itself has all rewards 0, so no such figure exists for it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ultrafeedback_binarized_sample"


def take(path: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # a few UltraFeedback replies are empty (the data layer rejects those conversations): skip such pairs
    return [r for r in rows if str(r["chosen"]).strip() and str(r["rejected"]).strip()][:n]


def write_jsonl(rows: list[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def conversation(row: dict) -> dict:
    return {"messages": [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["chosen"]}]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_pairs", type=int, default=1000)
    parser.add_argument("--dpo_pairs", type=int, default=0, help="DPO on the first N training pairs (0: all)")
    parser.add_argument("--eval_pairs", type=int, default=200)
    parser.add_argument("--max_length", type=int, default=512, help="prompt + reply tokens (SFT and DPO)")
    parser.add_argument("--max_prompt_length", type=int, default=256)
    parser.add_argument("--max_steps", type=int, default=-1, help="cap each stage's steps (a quick check)")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--dpo_learning_rate", type=float, default=5e-5)
    parser.add_argument("--dpo_epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--work", type=Path, default=None, help="run folder (default: a new temporary one)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding train_1000.jsonl and eval_200.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from zephyr.pipeline import RunConfig, run

    work = args.work or Path(tempfile.mkdtemp(prefix="dpo-quality-"))
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    train, held_out = take(args.data / "train_1000.jsonl", args.train_pairs), take(
        args.data / "eval_200.jsonl", args.eval_pairs)
    write_jsonl([conversation(r) for r in train], data / "sft_train.jsonl")
    write_jsonl([conversation(r) for r in held_out], data / "sft_test.jsonl")
    dpo_train = train[:args.dpo_pairs] if args.dpo_pairs > 0 else train
    write_jsonl(dpo_train, data / "pairs_train.jsonl")
    write_jsonl(held_out, data / "pairs_test.jsonl")

    recipe = work / "recipe"
    recipe.mkdir(exist_ok=True)
    for name in ("sft.yaml", "dpo.yaml"):
        values = yaml.safe_load((REPO / "recipes" / "demo" / name).read_text())
        values.update(dataset_mixer={str(data): 1.0}, test_split_size=0, save_steps=10, logging_steps=5)
        if name == "sft.yaml":
            values.update(dataset_splits=["sft_train", "sft_test"], max_seq_length=args.max_length, num_train_epochs=1)
        else:
            values.update(dataset_splits=["pairs_train", "pairs_test"], max_length=args.max_length,
                          max_prompt_length=args.max_prompt_length, beta=args.beta,
                          learning_rate=args.dpo_learning_rate, num_train_epochs=args.dpo_epochs)
        if args.max_steps > 0:
            values["max_steps"] = args.max_steps
        (recipe / name).write_text(yaml.safe_dump(values, sort_keys=False))

    start = time.perf_counter()
    summary = run(RunConfig(recipe=str(recipe), output_dir=str(work / "run"), stages=["sft", "dpo", "eval"]))
    seconds = time.perf_counter() - start
    result = {"train_pairs": len(train), "dpo_pairs": len(dpo_train), "eval_pairs": len(held_out),
              "max_length": args.max_length,
              "max_prompt_length": args.max_prompt_length, "beta": args.beta, "max_steps": args.max_steps,
              "eval": summary["eval"], "seconds": summary["seconds"], "cpu_seconds": summary["cpu_seconds"],
              "total_seconds": seconds, "threads": torch.get_num_threads(), "work": str(work)}
    e = summary["eval"]
    where = (f"GPU ({torch.cuda.get_device_name()})" if torch.cuda.is_available()
             else f"CPU, {torch.get_num_threads()} threads")
    result["device"] = where
    md = "\n".join([
        f"# DPO quality: gemma-3-270m (embedded), LoRA r=16, {where}", "",
        f"SFT on {len(train)} UltraFeedback prompts + chosen replies, then DPO (beta {args.beta}, learning rate "
        f"{args.dpo_learning_rate}, {args.dpo_epochs} epoch(s)) on the first {len(dpo_train)} of those pairs; "
        f"evaluated on {e['pairs']} held-out pairs (eval_200.jsonl). max_length "
        f"{args.max_length}, max_prompt_length {args.max_prompt_length}"
        f"{f', max_steps {args.max_steps} per stage (a check, not the result)' if args.max_steps > 0 else ''}. "
        f"Wall time {seconds / 60:.1f} min on {where} (stages: "
        f"{', '.join(f'{k} {v:.0f} s' for k, v in summary['seconds'].items())}; a stage done by an earlier "
        "invocation in the same --work folder is reused and not timed).", "",
        "| model | preference accuracy | rewards/accuracies vs SFT | rewards/margins vs SFT |",
        "|:--|:--:|:--:|:--:|",
        f"| SFT (reference) | {e['sft']['preference_accuracy']:.3f} | - | - |",
        f"| DPO | {e['dpo']['preference_accuracy']:.3f} | {e['dpo']['rewards/accuracies']:.3f} | "
        f"{e['dpo']['rewards/margins']:.4f} |", ""])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "dpo_quality" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (args.out / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
