"""`zephyr aif` end to end on this machine: a recipe-driven run on 50 UltraFeedback prompts, killed (SIGKILL)
once in every stage and resumed, checked for lost or doubled rows, then `zephyr dpo` on its pairs.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/aif_end_to_end.py [--recipe recipes/demo-aif/aif-50.yaml]
        [--judge_url URL --judge_model NAME] [--dpo_steps 3] [--work runs/aif-e2e] [--tag TAG]

  1. The judge: `zephyr serve` of the embedded model's GGUF file (google/gemma-3-270m Q4_K_M, from the
     package that ships it) on llama.cpp, bound to 127.0.0.1 on a free port (or --judge_url: any
     OpenAI-compatible judge already running).
  2. `zephyr aif --config RECIPE` with --pool the same GGUF file at four sampling settings (temperature 1,
     0.7, 0.3, and top-k 40 / top-p 0.9), so the pool runs on llama.cpp. The run is watched through its stage
     lines on stderr ("zephyr aif: stage ...") and its files, and killed with SIGKILL:
       * completions: once completions.jsonl holds the first step's rows (and not all of them);
       * judge aspects / critique: once aspects.jsonl / critiques.jsonl holds the first step's rows;
       * binarize: the stage lasts milliseconds, too short to hit from outside, so this run is started
         through a wrapper that pauses it right after rated.jsonl is written (before pairs.jsonl and
         report.json), and killed there.
     After each kill the same command is started again. A kill that came too late (the stage was over) is
     recorded as missed, never counted as a kill in that stage.
  3. Checks: every completion, aspect call, critique and re-asked score is in its file exactly once (no row
     lost, none doubled); rated.jsonl has one row per prompt; pairs.jsonl equals the pairs binarized afresh
     from rated.jsonl; the summary's counts are those an uninterrupted run gives (prompts, K x prompts
     completions, all judged); one more run over the finished folder asks nothing again, changes no file and
     reports the same counts.
  4. `zephyr dpo --config recipes/demo-aif/dpo.yaml` on pairs.jsonl for --dpo_steps steps (the embedded model,
     LoRA), when the run made at least two pairs.

Wall time is measured per stage from the stage lines (summed over the killed and resumed runs; process start
and model loading are counted as "start"). Writes benchmarks/results/aif_end_to_end[_TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
POOL = ("name=gemma-t1", "name=gemma-t0.7,temperature=0.7", "name=gemma-t0.3,temperature=0.3",
        "name=gemma-top40,top_k=40,top_p=0.9")
STAGE_FILES = {"completions": "completions.jsonl", "judge aspects": "aspects.jsonl", "critique": "critiques.jsonl"}
PREFIX = "zephyr aif: stage "


def zephyr_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "zephyr", *args]


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_judge(gguf: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(zephyr_command("serve", str(gguf), "--engine", "llama.cpp", "--host", "127.0.0.1",
                                              "--port", str(port), "--served_model_name", "judge"),
                               env=child_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the judge server stopped (exit {process.returncode}); see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return process, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(1)
    process.kill()
    raise SystemExit(f"the judge server did not answer in 300 s; see {log}")


def rows(path: Path) -> int:
    """Complete lines of a JSONL file (a torn last line is not a row)."""
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


class Run:
    """One `zephyr aif` process: its stage lines with their times, killed on request."""

    def __init__(self, command: list[str], log: Path):
        self.started = time.time()
        self.process = subprocess.Popen(command, env=child_env(), cwd=REPO, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.stages: list[tuple[str, float]] = [("start", self.started)]
        self.log = open(log, "ab")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buffer = b""
        while chunk := os.read(self.process.stdout.fileno(), 65536):
            self.log.write(chunk)
            self.log.flush()
            buffer += chunk
            *lines, buffer = buffer.replace(b"\r", b"\n").split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace")
                if text.startswith(PREFIX):
                    self.stages.append((text[len(PREFIX):].strip(), time.time()))

    @property
    def stage(self) -> str:
        return self.stages[-1][0]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.wait()

    def wait(self) -> int:
        code = self.process.wait()
        self.ended = time.time()
        self.reader.join()
        self.log.close()
        return code

    def durations(self) -> Counter:
        marks = [*self.stages, ("end", self.ended)]
        spent = Counter()
        for (name, at), (_, until) in zip(marks, marks[1:]):
            spent[name.split(" (")[0]] += until - at
        return spent


def run_killed_in(stage: str, command: list[str], out: Path, log: Path, first_step: int) -> tuple[Run, dict]:
    """Start the run and SIGKILL it inside `stage` (see the module docstring); -> (run, what happened)."""
    label = stage
    if stage == "binarize":
        sys.path.insert(0, str(REPO))  # the pausing wrapper lives in tests/fixtures/
        from tests.fixtures.aif_pause import MARKER, PAUSE_AFTER_RATED

        command = [command[0], "-c", PAUSE_AFTER_RATED, *command[4:]]  # python -m zephyr aif ARGS
        stage = MARKER.removeprefix(PREFIX)
    run = Run(command, log)
    path = out / STAGE_FILES.get(stage, "report.json")
    while run.process.poll() is None:
        if run.stage == stage and (stage.startswith("binarize") or rows(path) >= first_step):
            had = {name: rows(out / file) for name, file in STAGE_FILES.items()}
            run.kill()
            landed = run.stage == stage and not (out / "report.json").exists()
            return run, {"stage": label, "killed_after_s": round(run.ended - run.started, 1), "landed": landed,
                         "rows_at_kill": had}
        time.sleep(0.05)
    code = run.wait()
    return run, {"stage": label, "landed": False, "missed": f"the run ended (exit {code}) before the kill"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def check(out: Path, k: int, prompts: int, rule: str, seed: int) -> dict:
    """No row lost or doubled in any stage file, pairs as binarized afresh, counts of an uninterrupted run."""
    sys.path.insert(0, str(REPO))
    from zephyr.aif.cli import pairs_from

    problems = []

    def once(name: str, indices: list[int], expected: set[int]):
        doubled = [i for i, n in Counter(indices).items() if n > 1]
        missing = sorted(expected - set(indices))
        extra = sorted(set(indices) - expected)
        if doubled or missing or extra:
            problems.append(f"{name}: doubled {doubled[:5]}, missing {missing[:5]}, unexpected {extra[:5]}")

    completions = read_jsonl(out / "completions.jsonl")
    once("completions.jsonl", [c["index"] for c in completions], set(range(prompts * k)))
    once("aspects.jsonl", [r["index"] for r in read_jsonl(out / "aspects.jsonl")], set(range(prompts * 4)))
    once("critiques.jsonl", [r["index"] for r in read_jsonl(out / "critiques.jsonl")], set(range(prompts * k)))
    report = json.loads((out / "report.json").read_text())
    rescores = [r["index"] for r in read_jsonl(out / "rescores.jsonl")]
    once("rescores.jsonl", rescores, set(rescores))
    if len(set(rescores)) != report.get("aif_overall_score_10_rescored", 0):
        problems.append(f"rescores.jsonl: {len(set(rescores))} re-asked scores, the ratings use "
                        f"{report.get('aif_overall_score_10_rescored', 0)}")
    rated = read_jsonl(out / "rated.jsonl")
    if sorted(r["index"] for r in rated) != list(range(prompts)):
        problems.append(f"rated.jsonl: {len(rated)} rows for {prompts} prompts")
    fresh = pairs_from(out / "rated.jsonl", rule, seed, Counter())
    if fresh != read_jsonl(out / "pairs.jsonl"):
        problems.append("pairs.jsonl differs from the pairs binarized afresh from rated.jsonl")
    summary = report["summary"]
    expected = {"prompts": prompts, "completions": prompts * k, "judged": prompts * k, "pairs": len(fresh)}
    for key, value in expected.items():
        if summary[key] != value:
            problems.append(f"summary {key}: {summary[key]}, an uninterrupted run gives {value}")
    return {"problems": problems, "expected_counts": expected}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="recipes/demo-aif/aif-50.yaml")
    parser.add_argument("--judge_url", default="", help="an OpenAI-compatible judge already running")
    parser.add_argument("--judge_model", default="judge")
    parser.add_argument("--work", default="runs/aif-e2e", help="run folder (emptied first)")
    parser.add_argument("--dpo_steps", type=int, default=3)
    parser.add_argument("--max_prompts", type=int, default=0, help="override the recipe's (a quick try)")
    parser.add_argument("--batch_size", type=int, default=0, help="override the recipe's (a quick try)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    import yaml

    from zephyr.embedded import gguf_path

    recipe = yaml.safe_load((REPO / args.recipe).read_text())
    overrides = []
    for name in ("max_prompts", "batch_size"):
        if getattr(args, name):
            recipe[name] = getattr(args, name)
            overrides += [f"--{name}", str(recipe[name])]
    work = (REPO / args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work / "aif"
    gguf = gguf_path()
    began = time.time()
    judge = None
    if args.judge_url:
        judge_url, judge_what = args.judge_url, f"{args.judge_model} at {args.judge_url} (given)"
    else:
        t = time.time()
        judge, judge_url = start_judge(gguf, work / "judge.log")
        judge_what = f"zephyr serve {gguf.name} --engine llama.cpp on 127.0.0.1 (ready in {time.time() - t:.0f} s)"
    pool = [f"{gguf},{spec},engine=llama.cpp" for spec in POOL]
    command = zephyr_command("aif", "--config", args.recipe, "--pool", *pool, "--judge_url", judge_url,
                             "--judge_model", args.judge_model, "--output_dir", str(out), *overrides)
    first_step = recipe["batch_size"] * recipe["completions_per_prompt"]
    log = work / "aif.log"
    runs, kills = [], []
    try:
        for stage in ("completions", "judge aspects", "critique", "binarize"):
            run, what = run_killed_in(stage, command, out, log, first_step)
            runs.append(run)
            kills.append(what)
            print(f"kill in {stage}: {what}", flush=True)
        final = Run(command, log)
        runs.append(final)
        if final.wait() != 0:
            raise SystemExit(f"the resumed run failed; see {log}")
        report = json.loads((out / "report.json").read_text())
        files = ("completions.jsonl", "aspects.jsonl", "critiques.jsonl", "rescores.jsonl", "rated.jsonl",
                 "pairs.jsonl")
        before = {f: digest(out / f) for f in files}
        again = Run(command, log)
        again_code = again.wait()
        idempotent = {"exit": again_code, "stages_run": [s for s, _ in again.stages[1:]],
                      "files_unchanged": before == {f: digest(out / f) for f in files},
                      "same_report": json.loads((out / "report.json").read_text()) == report}
    finally:
        if judge is not None:
            judge.terminate()
            try:
                judge.wait(timeout=30)
            except subprocess.TimeoutExpired:
                judge.kill()
    aif_wall = time.time() - began
    checked = check(out, recipe["completions_per_prompt"], recipe["max_prompts"], recipe["rule"], recipe["seed"])
    if idempotent["stages_run"] != ["binarize"] or not idempotent["files_unchanged"] or not idempotent["same_report"]:
        checked["problems"].append(f"a run over the finished folder was not a no-op: {idempotent}")

    stage_wall = Counter()
    for run in runs:
        stage_wall.update(run.durations())
    dpo = {"ran": False}
    pairs = report["summary"]["pairs"]
    if pairs >= 2:
        dpo_out = work / "dpo"
        t = time.time()
        code = subprocess.run(zephyr_command(
            "dpo", "--config", "recipes/demo-aif/dpo.yaml",
            "--dataset_mixer", json.dumps({str(out / "pairs.jsonl"): 1.0}), "--test_split_size", "0",
            "--max_steps", str(args.dpo_steps), "--per_device_train_batch_size", "2", "--logging_steps", "1",
            "--save_steps", "0", "--output_dir", str(dpo_out), "--progress_bar", "false"),
            env=child_env(), cwd=REPO, stdout=open(work / "dpo.log", "w"), stderr=subprocess.STDOUT).returncode
        logged = read_jsonl(dpo_out / "metrics.jsonl")
        dpo = {"ran": True, "exit": code, "wall_s": round(time.time() - t, 1), "steps": args.dpo_steps,
               "losses": [r["loss"] for r in logged if "loss" in r]}
    else:
        dpo["why_not"] = f"{pairs} pairs: DPO needs at least 2"

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "date": time.strftime("%Y-%m-%d"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "recipe": args.recipe, "prompts_file": recipe["prompts"], "judge": judge_what,
        "pool": [spec.replace(str(gguf), gguf.name) for spec in pool],
        "lengths": {"answer_max_new_tokens": recipe["max_new_tokens"],
                    "aspect_call_max_tokens": recipe["judge_max_tokens"],
                    "critique_max_tokens": recipe["critique_max_tokens"],
                    "ultrafeedback": {"answer": 1024, "aspect_call": 500, "critique": 1024}},
        "judge_grammar_chars": recipe["judge_rationale_chars"] if recipe.get("judge_grammar") else 0,
        "overall_scores": score_counts(out / "rated.jsonl"),
        "ratings_equal_to_position": position_ratings(out / "aspects.jsonl"),
        "summary": report["summary"], "report": report, "kills": kills, "runs": len(runs),
        "wall_s_per_stage": {k: round(v, 1) for k, v in stage_wall.items()}, "aif_wall_s": round(aif_wall, 1),
        "idempotent_rerun": idempotent, "checks": checked, "dpo": dpo,
    }
    name = "aif_end_to_end" + (f"_{args.tag}" if args.tag else "")
    (HERE / "results" / f"{name}.json").write_text(json.dumps(result, indent=1))
    (HERE / "results" / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 1 if checked["problems"] or (dpo["ran"] and dpo["exit"] != 0) else 0


def score_counts(rated: Path) -> dict[str, int]:
    """How the judge's overall_scores spread (one value for all would make every pair a tie)."""
    scores = Counter(str(c.get("overall_score")) for row in read_jsonl(rated) for c in row["completions"])
    return dict(sorted(scores.items()))


def position_ratings(aspects: Path) -> dict[str, int]:
    """Aspect ratings that equal the number of the text they rate in the shown order (Text 1 rated 1, ...): a
    judge that counts instead of judging scores them all."""
    counted = Counter()
    for row in read_jsonl(aspects):
        for slot, annotation in enumerate(row["annotations"] or []):
            if annotation["Rating"] != "N/A":
                counted["ratings"] += 1
                counted["equal_to_position"] += int(annotation["Rating"]) == row["order"].index(slot) + 1
    return dict(counted)


def markdown(r: dict) -> str:
    s, lengths = r["summary"], r["lengths"]
    lines = [
        f"# zephyr aif end to end: {s['prompts']} prompts, kill and resume in every stage, then zephyr dpo", "",
        f"{r['machine']}, {r['date']}, load average at the end {r['load_average']}. Recipe `{r['recipe']}`, "
        f"prompts `{r['prompts_file']}`. Judge: {r['judge']}. Pool: " + "; ".join(f"`{p}`" for p in r["pool"]) + ".",
        "",
        f"**Departure from UltraFeedback, to fit the CPU:** answers up to {lengths['answer_max_new_tokens']} new "
        f"tokens (UltraFeedback 1024), an aspect call's four rationales up to {lengths['aspect_call_max_tokens']} "
        f"tokens (500), a critique up to {lengths['critique_max_tokens']} tokens (1024). The judge is the 270M "
        "base model, not GPT-4" + (f", held to UltraFeedback's reply format by a grammar (`judge_grammar`, "
                                   f"rationales up to {r['judge_grammar_chars']} characters)."
                                   if r.get("judge_grammar_chars") else "."), "",
        "overall_score of the rated completions (score: count): "
        + (", ".join(f"{k}: {v}" for k, v in r["overall_scores"].items()) or "none") + ". Aspect ratings equal to "
        f"the rated text's number in the order shown: {r['ratings_equal_to_position'].get('equal_to_position', 0)} "
        f"of {r['ratings_equal_to_position'].get('ratings', 0)} (about 1 in 5 where ratings spread over 1-5 do "
        "not follow the order).", "",
        "| prompts | completions | judged | judge calls | unparsable (aspect / critique / rescore) | pairs | "
        "dropped ties | tied pairs kept | dropped, < 2 rated |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        f"| {s['prompts']} | {s['completions']} | {s['judged']} | {s['judge_calls']} | {s['unparsable']} "
        f"({s['unparsable_aspect_calls']} / {s['unparsable_critiques']} / {s['unparsable_rescores']}) | "
        f"{s['pairs']} | {s['dropped_ties']} | {s['tied_pairs_kept']} | {s['dropped_fewer_than_2_rated']} |", "",
        "| kill (SIGKILL) in | landed in the stage | after (s) | rows written at the kill |", "|---|---|---:|---|"]
    for k in r["kills"]:
        rows_at = ", ".join(f"{n} {v}" for n, v in k.get("rows_at_kill", {}).items()) or k.get("missed", "")
        lines.append(f"| {k['stage']} | {'yes' if k['landed'] else 'no'} | {k.get('killed_after_s', '')} | "
                     f"{rows_at} |")
    lines += ["", f"{r['runs']} runs of `zephyr aif` (each killed one restarted with the same command; not counting the "
              f"no-op run over the finished folder). Wall time "
              f"per stage, summed over them (s): " + ", ".join(f"{k} {v}" for k, v in r["wall_s_per_stage"].items())
              + f"; whole AIF part with the judge's start {r['aif_wall_s']} s.", ""]
    problems = r["checks"]["problems"]
    lines.append("Checks (no row lost or doubled in any stage file, pairs = binarized afresh from rated.jsonl, "
                 "counts = an uninterrupted run's, a run over the finished folder asks nothing and changes "
                 "nothing): " + ("**all passed**." if not problems else "**failed**: " + "; ".join(problems)))
    lines.append("")
    d = r["dpo"]
    if d["ran"]:
        lines.append(f"`zephyr dpo --config recipes/demo-aif/dpo.yaml` on the pairs: {d['steps']} steps, exit "
                     f"{d['exit']}, {d['wall_s']} s, losses {[round(x, 4) for x in d['losses']]}.")
    else:
        lines.append(f"`zephyr dpo` did not run: {d['why_not']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
