"""`zephyr eval BENCHMARK`: answer a benchmark with a model, score the answers, write a report.

    zephyr eval mt_bench    --model runs/demo/dpo --judge_url http://127.0.0.1:8000/v1 --judge_model gpt-4
    zephyr eval alpaca_eval --model runs/demo/dpo --judge_url ... [--data alpaca_eval.json]
    zephyr eval ifeval      --model runs/demo/dpo [--data input_data.jsonl]
    zephyr eval lm_eval     --model runs/demo/dpo --tasks arc_easy hellaswag [--num_fewshot 0]

Output folder: answers.jsonl, judgements.jsonl (judged benchmarks), report.json; the report is printed.
Without --data, each benchmark loads its hub copy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tqdm import tqdm

from ..judge import JudgeConfig, check_judge, make_judge
from ..config import field, parse_args
from ..data.io import write_rows
from ..errors import ConfigError
from ..sampling import SamplingConfig, batched, generate_batch
from . import alpaca_eval, ifeval, mt_bench

BENCHMARKS = ("mt_bench", "alpaca_eval", "ifeval", "lm_eval")
JUDGED = ("mt_bench", "alpaca_eval")


@dataclasses.dataclass
class EvalConfig(JudgeConfig, SamplingConfig):
    """Evaluate a chat model on MT-Bench, AlpacaEval or IFEval."""

    benchmark: str = field("mt_bench", help="mt_bench, alpaca_eval, ifeval or lm_eval")
    data: str = field("", help="local benchmark file (question.jsonl, alpaca_eval.json, input_data.jsonl); default: hub")
    references: str = field("", help="MT-Bench reference answers (FastChat jsonl) for math/reasoning/coding")
    output_dir: str = field("runs/eval", help="where answers, judgements and report.json go")
    limit: int = field(0, help="evaluate only the first N items (0 = all)")
    batch_size: int = field(8, help="prompts generated together")
    tasks: list[str] = field([], help="lm_eval: harness task names (e.g. --tasks arc_easy hellaswag)")
    num_fewshot: int | None = field(None, help="lm_eval: few-shot examples (default: each task's own)")
    include_path: str = field("", help="lm_eval: folder of extra task YAMLs")
    # AlpacaEval (zephyr/eval/alpaca_eval.py)
    annotator: str = field("weighted_alpaca_eval_gpt4_turbo",
                           help="alpaca_eval: weighted_alpaca_eval_gpt4_turbo (AlpacaEval 2) or alpaca_eval_gpt4 (1)")
    annotations: str = field("", help="alpaca_eval: recompute the leaderboard row of this annotations.json "
                                      "(no model, no judge)")
    df_gamed: str = field("", help="alpaca_eval: local copy of the hub's df_gamed.csv for the length-controlled "
                                   "win rate (default: downloaded by alpaca-eval)")
    generator: str = field("", help="alpaca_eval: the model's name in the outputs (default: the model folder's)")

    def __post_init__(self):
        super().__post_init__()
        if self.benchmark not in BENCHMARKS:
            raise ConfigError(f"unknown benchmark {self.benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
        if self.benchmark == "lm_eval" and not self.tasks:
            raise ConfigError("lm_eval needs --tasks (harness task names)")
        if self.benchmark == "alpaca_eval":
            alpaca_eval.check_settings(self)
        if self.benchmark in JUDGED and not (self.benchmark == "alpaca_eval" and self.annotations):
            check_judge(self)  # fail on a bad judge before generating


def make_generator(config: EvalConfig):
    """-> generate(conversations, temperature=None) -> replies, with one model load."""
    from ..models import load_model, load_tokenizer

    tokenizer = load_tokenizer(config)
    model = load_model(config, tokenizer).eval()

    def generate(conversations, temperature=None):
        sampling = config if temperature is None else dataclasses.replace(config, temperature=temperature)
        replies = []
        for start, chunk in tqdm(list(batched(conversations, config.batch_size)), desc="answer", unit="batch"):
            replies += generate_batch(model, tokenizer, chunk, sampling, config.chat_template,
                                      seed=config.seed + start)
        return replies

    return generate


def run(config: EvalConfig, generate=None) -> dict:
    if config.benchmark == "lm_eval":
        return run_lm_eval(config)
    if config.benchmark == "alpaca_eval":
        if config.annotations:
            return alpaca_eval.recompute(config)
        defaults = {f.name: f.default for f in dataclasses.fields(EvalConfig)}
        config = alpaca_eval.with_defaults(config, defaults)
        return alpaca_eval.run(config, (lambda _: generate) if generate else make_generator, make_judge)
    judge = make_judge(config) if config.benchmark in JUDGED else None
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    generate = generate or make_generator(config)
    limit = config.limit or None
    if config.benchmark == "mt_bench":
        questions = mt_bench.load_questions(config.data or None)[:limit]
        answers = mt_bench.answer_questions(generate, questions)
        write_rows(({"question_id": q, "turns": a} for q, a in answers.items()), out / "answers.jsonl")
        judgements, report = mt_bench.judge_answers(judge, questions, answers,
                                                    mt_bench.load_references(config.references or None))
    else:
        rows = ifeval.load_prompts(config.data or None)[:limit]
        responses = generate([[{"role": "user", "content": r["prompt"]}] for r in rows])
        checked = [ifeval.check(r, response) for r, response in zip(rows, responses)]
        write_rows(({"key": r.get("key"), "prompt": r["prompt"], "response": response, "instructions": c}
                    for r, response, c in zip(rows, responses, checked)), out / "answers.jsonl")
        judgements, report = [], ifeval.summarize(checked)
    if judgements:
        write_rows(judgements, out / "judgements.jsonl")
    report = {"benchmark": config.benchmark, "model": config.model,
              "judge": getattr(judge, "name", None), **report}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def run_lm_eval(config: EvalConfig) -> dict:
    from ..models import resolve
    from .lm_eval_tasks import evaluate, summarize

    where, gguf_file = resolve(config.model)
    if gguf_file:
        raise ConfigError("lm_eval runs on a transformers checkpoint folder, not a .gguf file")
    results = evaluate(where, config.tasks, config.num_fewshot, config.batch_size,
                       "float32" if config.dtype == "auto" else config.dtype, include_path=config.include_path,
                       limit=config.limit or None)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "lm_eval", "model": config.model, "results": summarize(results)}
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def main(argv: list[str] | None = None) -> int:
    config = parse_args(EvalConfig, argv, prog="zephyr eval", positional="benchmark")
    report = run(config)
    print(json.dumps(report, indent=1))
    return 0
