"""`zephyr aif`: prompts -> completions from several models -> judge ratings -> preference pairs.

Output folder:
  completions/<k>.jsonl   one file per answering model (resumable, as `zephyr generate`)
  rated.jsonl             raw UltraFeedback-style rows: instruction + completions with ratings (resumable)
  pairs.jsonl             binarized pairs {prompt, chosen, rejected, score_chosen, score_rejected}
  report.json             counts: prompts, completions, unparsable judgements, ties, drops, pairs
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from ..config import field, parse_args
from ..data.io import appending, finished_rows, read_objects
from ..errors import ConfigError
from ..generate import GenerateConfig, read_conversations
from ..generate import run as generate
from ..sampling import Sampling
from ..judge import JudgeConfig, check_judge, make_judge
from .judge import rate
from .rubric import annotations


@dataclasses.dataclass
class AIFConfig(JudgeConfig, Sampling):
    """AI feedback: answer prompts with several models, rate the answers with a judge, binarize into pairs."""

    prompts: str = field("", help="JSONL of prompts: {'prompt': '...'} or {'messages': [... ending with a user turn]}")
    models: list[str] = field(["embedded"], help="models that answer (hub ids, folders, .gguf, 'embedded'): --models A B ...")
    output_dir: str = field("runs/aif", help="where completions, ratings, pairs and the report go")
    batch_size: int = field(8, help="prompts answered together")
    skip_invalid: bool = field(False, help="skip (and count) bad prompt lines instead of stopping")

    def __post_init__(self):
        if not self.prompts:
            raise ConfigError("--prompts is needed (a JSONL file of prompts)")
        if len(self.models) < 2:
            raise ConfigError("AIF needs at least two answering models (--models A B ...) to form a preference")
        check_judge(self)


def answer(config: AIFConfig, out: Path) -> list[Path]:
    """One completions file per model, each resumable."""
    paths = []
    for k, model in enumerate(config.models):
        path = out / "completions" / f"{k}.jsonl"
        sampling = {f.name: getattr(config, f.name) for f in dataclasses.fields(Sampling)}
        generate(GenerateConfig(model=model, input=config.prompts, output=str(path), batch_size=config.batch_size,
                                skip_invalid=config.skip_invalid, **sampling))
        paths.append(path)
    return paths


def judge_all(config: AIFConfig, completion_files: list[Path], out: Path) -> Path:
    """Rate every completion; one raw UltraFeedback row per prompt appended to rated.jsonl (resumable)."""
    by_model = []
    for path in completion_files:
        by_model.append({row["index"]: row for _, row in read_objects(path)})
    indices = sorted(set.intersection(*(set(rows) for rows in by_model)))
    rated = out / "rated.jsonl"
    done = finished_rows(rated)
    todo = [i for i in indices if i not in done]
    judge = make_judge(config) if todo else None
    with appending(rated) as append:
        for i in tqdm(todo, desc="judge", unit="prompt"):
            instruction = by_model[0][i]["messages"][-2]["content"]
            responses = [rows[i]["reply"] for rows in by_model]
            completions = []
            for model, response, (ratings, text) in zip(config.models, responses,
                                                       rate(judge, [(instruction, r) for r in responses])):
                completions.append({"model": model, "response": response, "annotations": annotations(ratings),
                                    "judge_output": text})
            append([{"index": i, "instruction": instruction, "completions": completions}])
    return rated


def binarize_file(rated: Path, pairs_path: Path, seed: int, counts: Counter) -> int:
    from ..data import binarize_row, read_rows, write_rows

    pairs = []
    for where, row in read_rows(rated):
        counts["aif_unparsable_judgements"] += sum(
            all(a["Rating"] == "N/A" for a in c["annotations"].values()) for c in row["completions"])
        pair = binarize_row(row, where, seed, counts)
        if pair is not None:
            pairs.append(pair)
    return write_rows(pairs, pairs_path)


def run(config: AIFConfig) -> dict:
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    prompts, skipped = read_conversations(config.prompts, config.skip_invalid)
    counts["aif_prompts"], counts["aif_invalid_prompts_skipped"] = len(prompts), skipped
    files = answer(config, out)
    rated = judge_all(config, files, out)
    counts["aif_pairs_written"] = binarize_file(rated, out / "pairs.jsonl", config.seed, counts)
    report = dict(sorted(counts.items()))
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    config = parse_args(AIFConfig, argv, prog="zephyr aif")
    report = run(config)
    width = max(map(len, report))
    print("\n".join(f"{key:<{width}}  {value}" for key, value in report.items()))
    print(f"zephyr aif: pairs -> {Path(config.output_dir) / 'pairs.jsonl'}")
    return 0
