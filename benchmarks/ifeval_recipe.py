"""Does the recipe make the model follow instructions better? IFEval of the base model, the SFT model and the final
(SFT + DPO) model of `zephyr run recipes/demo` (and, if given, of benchmarks/dpo_quality.py's UltraFeedback run),
on the same prompts with the same settings: greedy, up to 1,280 new tokens (lm-eval's IFEval setting).

    python benchmarks/ifeval_recipe.py --ifeval_data ../shared/data/ifeval/input_data.jsonl            # all 541
    python benchmarks/ifeval_recipe.py --ifeval_data ... --prompts 80 --tag subset80                    # a subset
    python benchmarks/ifeval_recipe.py --ifeval_data ... --run ultrafeedback=/tmp/dpo_quality_work     # add a run
    python benchmarks/ifeval_recipe.py --collect runs/demo   # the IFEval stage of a finished `zephyr run`
    python benchmarks/ifeval_recipe.py --ifeval_data ... --score base=B.jsonl sft=S.jsonl final=F.jsonl  # saved

The demo run is trained (or reused) in --work with `zephyr run recipes/demo --stages sft dpo eval`; each model's
answers and report land in <run>/ifeval/<model>/, so a rerun only scores what is missing. Results:
benchmarks/results/ifeval_recipe[_TAG].json and .md, with the four IFEval numbers per model, the held-out pair
accuracy of the demo run and the wall time of each part. `--collect RUN` trains and scores nothing: it writes
the IFEval stage that `zephyr run` itself ran (its subset, 24 prompts by default) to
results/ifeval_demo_run[_TAG].{json,md}, with each model's mean reply length (`--tag` suffixes the name).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

from zephyr.pipeline import IFEVAL_NUMBERS as NUMBERS

REPO = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ifeval_data", default="", help="IFEval input_data.jsonl (default: the hub copy)")
    parser.add_argument("--prompts", type=int, default=0, help="prompts spread evenly over the 541 (0: all)")
    parser.add_argument("--max_new_tokens", type=int, default=1280)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--engine", default="generate",
                        help="zephyr eval's engine (generate: fixed batches, as the 541-prompt tables were made; "
                             "transformers: continuous batching, as the demo run's IFEval stage generates)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "ifeval_recipe", help="the demo run's folder")
    parser.add_argument("--run", action="append", default=[],
                        help="NAME=DIR of another finished `zephyr run` folder (sft/, dpo/, and for LoRA "
                             "stages sft-merged/, final/) to score too")
    parser.add_argument("--tag", default="", help="results file suffix")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--collect", type=Path, help="a finished `zephyr run` folder whose IFEval stage to write up")
    parser.add_argument("--score", nargs="+", metavar="MODEL=ANSWERS",
                        help="no training, no generation: score saved replies ({\"prompt\", \"response\"} JSONL, e.g. "
                             "a model's ifeval/<model>/answers.jsonl) on the --prompts subset and write the table")
    args = parser.parse_args()
    if args.collect:
        return collect(args.collect, args.out, args.tag)
    if args.score:
        return score(dict(s.split("=", 1) for s in args.score), args)

    from zephyr import pipeline
    from zephyr.export import is_adapter

    timings, results = {}, {}
    start = time.perf_counter()
    pipeline.main([str(REPO / "recipes" / "demo"), "--output_dir", str(args.work), "--stages", "sft", "dpo", "eval"])
    timings["demo train + held-out eval"] = round(time.perf_counter() - start, 1)
    held_out = json.loads((args.work / "eval.json").read_text())
    runs = {"demo": args.work, **{name: Path(folder) for name, folder in (r.split("=", 1) for r in args.run)}}
    for name, folder in runs.items():
        start = time.perf_counter()
        cfg = pipeline.RunConfig(output_dir=str(folder), ifeval_data=args.ifeval_data, ifeval_prompts=args.prompts,
                                 ifeval_max_new_tokens=args.max_new_tokens, ifeval_batch_size=args.batch_size,
                                 ifeval_engine=args.engine)
        sft = SimpleNamespace(model="embedded", dtype="auto", chat_template="zephyr")
        sft_model = pipeline.model_folder(folder / "sft", folder / "sft-merged", is_adapter(folder / "sft"))
        final = pipeline.model_folder(folder / "dpo", folder / "final", is_adapter(folder / "dpo"))
        results[name] = pipeline.run_ifeval(cfg, sft, SimpleNamespace(model=str(sft_model)), final)
        timings[f"{name} IFEval (3 models)"] = round(time.perf_counter() - start, 1)

    report = {"settings": {"prompts": results["demo"]["prompts"], "max_new_tokens": args.max_new_tokens,
                           "temperature": 0.0, "engine": args.engine, "data": args.ifeval_data or "google/IFEval"},
              "runs": {name: r["models"] for name, r in results.items()},
              "demo_held_out_pairs": {"pairs": held_out["pairs"],
                                      "sft_preference_accuracy": held_out["sft"]["preference_accuracy"],
                                      "dpo_preference_accuracy": held_out["dpo"]["preference_accuracy"]},
              "seconds": timings}
    lines = [f"# IFEval: base -> SFT -> DPO ({report['settings']['prompts']} prompts, greedy, "
             f"{args.max_new_tokens} new tokens)", "",
             "| run | model | prompt strict | prompt loose | instruction strict | instruction loose |",
             "|---|---|---:|---:|---:|---:|"]
    for run, models in report["runs"].items():
        for model, numbers in models.items():
            lines.append(f"| {run} | {model} | " + " | ".join(f"{numbers[k]:.1f}" for k in NUMBERS) + " |")
    pairs = report["demo_held_out_pairs"]
    lines += ["", f"Demo held-out pairs ({pairs['pairs']}): preference accuracy SFT "
              f"{pairs['sft_preference_accuracy']:.3f} -> DPO {pairs['dpo_preference_accuracy']:.3f}.", "",
              "Seconds: " + ", ".join(f"{k} {v}" for k, v in timings.items())]
    write_results(args.out, "ifeval_recipe", args.tag, report, lines)


def score(files: dict[str, str], args) -> None:
    """Each model's saved replies checked against the prompts they answer; a prompt without a reply is an error."""
    from zephyr.eval import ifeval

    prompts = ifeval.fixed_subset(ifeval.load_prompts(args.ifeval_data or None), args.prompts)
    models = {}
    for name, path in files.items():
        joined, unjoined, missing = ifeval.load_responses(path, prompts)
        if unjoined or missing:
            raise SystemExit(f"{path}: {len(missing)} prompts without a reply, {len(unjoined)} rows of other prompts")
        checked = [ifeval.check(row, response) for row, response in joined]
        summary = ifeval.summarize(checked)
        models[name] = {**{k: summary[k] for k in NUMBERS}, "prompts": len(joined), "answers": path,
                        "mean_reply_words": mean_words(Path(path))}
    report = {"settings": {"prompts": len(prompts), "max_new_tokens": args.max_new_tokens, "temperature": 0.0,
                           "data": args.ifeval_data or "google/IFEval"}, "models": models}
    lines = [f"# IFEval: base -> SFT -> DPO ({len(prompts)} prompts, greedy, {args.max_new_tokens} new tokens)", "",
             *model_table(models, {name: m["mean_reply_words"] for name, m in models.items()})]
    write_results(args.out, "ifeval_recipe", args.tag, report, lines)


def model_table(models: dict[str, dict], words: dict[str, float]) -> list[str]:
    """The four numbers and the mean reply length of each model, as markdown table lines."""
    return ["| model | prompt strict | prompt loose | instruction strict | instruction loose | mean reply words |",
            "|---|---:|---:|---:|---:|---:|",
            *(f"| {name} | " + " | ".join(f"{numbers[k]:.1f}" for k in NUMBERS) + f" | {words[name]} |"
              for name, numbers in models.items())]


def write_results(out: Path, stem: str, tag: str, report: dict, lines: list[str]) -> None:
    """<out>/<stem>[_<tag>].json and .md, and the table printed."""
    out.mkdir(parents=True, exist_ok=True)
    stem += f"_{tag}" if tag else ""
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def mean_words(answers: Path) -> float:
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    return round(sum(len(r["response"].split()) for r in rows) / len(rows), 1)


def collect(run: Path, out: Path, tag: str = "") -> None:
    ifeval, held = json.loads((run / "ifeval.json").read_text()), json.loads((run / "eval.json").read_text())
    seconds = json.loads((run / "summary.json").read_text())["seconds"]
    metrics = [json.loads(line) for line in (run / "sft" / "metrics.jsonl").read_text().splitlines()]
    words = {name: mean_words(run / "ifeval" / name / "answers.jsonl") for name in ifeval["models"]}
    settings = {k: ifeval[k] for k in ("prompts", "max_new_tokens", "engine", "data") if k in ifeval}
    report = {"settings": settings, "models": ifeval["models"],
              "mean_reply_words": words, "held_out_pairs": held, "seconds": seconds,
              "sft_eval_loss_by_epoch": [m["eval_loss"] for m in metrics if "eval_loss" in m]}
    lines = [f"# IFEval stage of `zephyr run recipes/demo` ({ifeval['prompts']} prompts, greedy, "
             f"{ifeval['max_new_tokens']} new tokens)", "", *model_table(ifeval["models"], words)]
    lines += ["", f"Held-out pairs ({held['pairs']}): preference accuracy SFT {held['sft']['preference_accuracy']:.3f}"
              f" -> DPO {held['dpo']['preference_accuracy']:.3f}; DPO rewards/accuracies "
              f"{held['dpo']['rewards/accuracies']:.3f}.", "",
              "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())]
    write_results(out, "ifeval_demo_run", tag, report, lines)


if __name__ == "__main__":
    main()
