"""`zephyr eval BENCHMARK`: answer a benchmark with a model, score the answers, write a report.

    zephyr eval mt_bench    --model runs/demo/dpo --judge_url http://127.0.0.1:8000/v1 --judge_model gpt-4
    zephyr eval alpaca_eval --model runs/demo/dpo --judge_url ... [--data alpaca_eval.json]
    zephyr eval ifeval      --model runs/demo/dpo [--data input_data.jsonl]
    zephyr eval ifeval      --responses input_response_data.jsonl [--data input_data.jsonl]   (no model)
    zephyr eval lm_eval     --model runs/demo/dpo --tasks arc_easy hellaswag [--num_fewshot 0]

Output folder: answers.jsonl, judgements.jsonl (judged benchmarks), report.json; the report is printed.
Without --data, each benchmark loads its hub copy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tqdm import tqdm

from ..aif.judge import JudgeConfig, check_judge, make_judge
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
    # IFEval
    responses: str = field("", help="ifeval: score this {\"prompt\", \"response\"} JSONL (Google's "
                                    "input_response_data format) instead of generating; joined to the prompts by text")

    def __post_init__(self):
        super().__post_init__()
        if self.benchmark not in BENCHMARKS:
            raise ConfigError(f"unknown benchmark {self.benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
        if self.benchmark == "lm_eval" and not self.tasks:
            raise ConfigError("lm_eval needs --tasks (harness task names)")
        if self.benchmark in JUDGED:
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
    if config.benchmark == "ifeval":
        return run_ifeval(config, generate)
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
    elif config.benchmark == "alpaca_eval":
        rows = alpaca_eval.load_instructions(config.data or None)[:limit]
        outputs = generate([[{"role": "user", "content": r["instruction"]}] for r in rows])
        write_rows(({"instruction": r["instruction"], "output": o} for r, o in zip(rows, outputs)),
                   out / "answers.jsonl")
        judgements, report = alpaca_eval.judge_outputs(judge, rows, outputs, config.seed)
    if judgements:
        write_rows(judgements, out / "judgements.jsonl")
    report = {"benchmark": config.benchmark, "model": config.model,
              "judge": getattr(judge, "name", None), **report}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def run_ifeval(config: EvalConfig, generate=None) -> dict:
    """Prompts (and --responses) validated and the sentence splitter's data checked before any model loads; then
    generate (greedy unless --temperature says otherwise) or take the given responses, check, report."""
    rows = ifeval.load_prompts(config.data or None)[:config.limit or None]
    ifeval.require_punkt()
    extra = {}
    if config.responses:
        joined, unjoined, missing = ifeval.load_responses(config.responses, rows)
        rows, responses = [r for r, _ in joined], [response for _, response in joined]
        extra = {"responses": config.responses, "responses_not_joined": unjoined,
                 "prompts_without_response": len(missing)}
        for where in unjoined:
            print(f"{where}: prompt matches no IFEval prompt; row not scored", flush=True)
        if missing:
            print(f"{len(missing)} IFEval prompts have no response in {config.responses}; scored: {len(rows)}",
                  flush=True)
    else:
        generate = generate or make_generator(config)
        responses = generate([[{"role": "user", "content": r["prompt"]}] for r in rows])
    checked = [ifeval.check(r, response) for r, response in zip(rows, responses)]
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_rows(({"key": r.get("key"), "prompt": r["prompt"], "response": response, "instructions": c}
                for r, response, c in zip(rows, responses, checked)), out / "answers.jsonl")
    report = {"benchmark": "ifeval", "model": None if config.responses else config.model, "judge": None,
              **ifeval.summarize(checked), **extra}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(ifeval.format_table(report), flush=True)
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
