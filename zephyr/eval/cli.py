"""`zephyr eval BENCHMARK`: answer a benchmark with a model, score the answers, write a report.

    zephyr eval mt_bench    --model runs/demo/dpo --judge_url https://api.openai.com/v1 --judge_model gpt-4
    zephyr eval mt_bench    --judgments model_judgment/gpt-4_single.jsonl   (show_result's tables, no model)
    zephyr eval alpaca_eval --model runs/demo/dpo --judge_url ... [--data alpaca_eval.json]
    zephyr eval ifeval      --model runs/demo/dpo [--data input_data.jsonl]
    zephyr eval ifeval      --responses input_response_data.jsonl [--data input_data.jsonl]   (no model)
    zephyr eval lm_eval     --model runs/demo/dpo --tasks arc_easy hellaswag [--num_fewshot 0]
    zephyr eval lm_eval     --model runs/demo/dpo --preset open_llm_v1

Output folder: answers.jsonl, judgements.jsonl (judged benchmarks), report.json; the report is printed.
MT-Bench writes FastChat's model_answer/ and model_judgment/ files instead. The figures also go into the model
card of a local --model folder. Without --data, each benchmark loads its official copy.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from ..judge import JudgeConfig, check_judge, make_judge
from ..config import field, parse_args
from ..data.io import write_rows
from ..errors import ConfigError
from ..sampling import SamplingConfig
from . import alpaca_eval, ifeval, mt_bench
from .generator import ENGINES, make_generator

BENCHMARKS = ("mt_bench", "alpaca_eval", "ifeval", "lm_eval")
JUDGED = ("mt_bench", "alpaca_eval")


@dataclasses.dataclass
class EvalConfig(JudgeConfig, SamplingConfig):
    """Evaluate a chat model on MT-Bench, AlpacaEval or IFEval."""

    benchmark: str = field("mt_bench", help="mt_bench, alpaca_eval, ifeval or lm_eval")
    data: str = field("", help="local benchmark file (question.jsonl, alpaca_eval.json, input_data.jsonl); default: hub")
    output_dir: str = field("runs/eval", help="where answers, judgements and report.json go")
    limit: int = field(0, help="evaluate only the first N items (0 = all)")
    batch_size: int = field(8, help="replies generated together")
    engine: str = field("generate", help="generate (transformers' generate on batches of --batch_size; the fastest "
                                         "measured on a CPU), transformers (zephyr serve's batched decoder: a "
                                         "finished reply's row takes the next prompt), llama.cpp (.gguf --model), vllm")
    # --- MT-Bench (FastChat llm_judge), lm-eval, and results into the model card ---
    update_card: bool = field(True, help="write the results into the model card (README.md) of a local --model folder")
    judge_prompts: str = field("", help="MT-Bench: FastChat's judge_prompts.jsonl (default: FastChat v0.2.36's, "
                                        "downloaded once and cached)")
    references: str = field("", help="MT-Bench: reference answers for math/reasoning/coding, FastChat layout "
                                     "(default: FastChat's reference_answer/gpt-4.jsonl)")
    judgments: str = field("", help="MT-Bench: print show_result's tables for this FastChat judgments file "
                                    "(model_judgment/*_single.jsonl); no model, no judge")
    answers: str = field("", help="MT-Bench: judge the answers of this FastChat model_answer/<model_id>.jsonl "
                                  "instead of generating (no model loads)")
    model_id: str = field("", help="MT-Bench: the model's name in FastChat's files (default: the model folder's, "
                                   "or the --answers file's name)")
    mt_bench_max_new_tokens: int = field(1024, help="MT-Bench: longest answer per turn (FastChat's 1024)")
    tasks: list[str] = field([], help="lm_eval: harness task names (e.g. --tasks arc_easy hellaswag)")
    preset: str = field("", help="lm_eval: open_llm_v1, open_llm_v2 or nous (the tasks, shots and metrics of "
                                 "those tables)")
    num_fewshot: int | None = field(None, help="lm_eval: few-shot examples for --tasks (default: each task's own)")
    task_fewshot: list[str] = field([], help="lm_eval: per-task few-shot counts, e.g. --task_fewshot arc_easy=25")
    apply_chat_template: bool | None = field(None, help="lm_eval: format prompts with the model's chat template "
                                                        "(default: the preset's setting; off for --tasks)")
    include_path: str = field("", help="lm_eval: folder of extra task YAMLs")
    # AlpacaEval (zephyr/eval/alpaca_eval.py)
    annotator: str = field("weighted_alpaca_eval_gpt4_turbo",
                           help="alpaca_eval: weighted_alpaca_eval_gpt4_turbo (AlpacaEval 2) or alpaca_eval_gpt4 (1)")
    annotations: str = field("", help="alpaca_eval: recompute the leaderboard row of this annotations.json "
                                      "(no model, no judge)")
    df_gamed: str = field("", help="alpaca_eval: local copy of the hub's df_gamed.csv for the length-controlled "
                                   "win rate (default: downloaded by alpaca-eval)")
    generator: str = field("", help="alpaca_eval: the model's name in the outputs (default: the model folder's)")
    # IFEval
    responses: str = field("", help="ifeval: score this {\"prompt\", \"response\"} JSONL (Google's "
                                    "input_response_data format) instead of generating; joined to the prompts by text")

    def __post_init__(self):
        super().__post_init__()
        if self.benchmark not in BENCHMARKS:
            raise ConfigError(f"unknown benchmark {self.benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine: {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.engine != "generate" and self.repetition_penalty != 1.0:
            raise ConfigError("--repetition_penalty: zephyr serve's engines do not apply it; use --engine generate")
        if self.benchmark == "lm_eval":
            from .lm_eval_tasks import check_settings

            check_settings(self.tasks, self.preset, self.task_fewshot)
        if self.mt_bench_max_new_tokens < 1:
            raise ConfigError(f"--mt_bench_max_new_tokens: must be at least 1, got {self.mt_bench_max_new_tokens}")
        if self.benchmark == "alpaca_eval":
            alpaca_eval.check_settings(self)
        rescoring = (self.benchmark == "mt_bench" and self.judgments) or \
            (self.benchmark == "alpaca_eval" and self.annotations)
        if self.benchmark in JUDGED and not rescoring:
            check_judge(self)  # fail on a bad judge before generating


def run(config: EvalConfig, generate=None) -> dict:
    if config.benchmark == "lm_eval":
        return record(config, run_lm_eval(config))
    if config.benchmark == "mt_bench":  # FastChat's protocol and files: zephyr/eval/mt_bench.py
        sampling = dataclasses.replace(config, max_new_tokens=config.mt_bench_max_new_tokens,
                                       top_p=mt_bench.ANSWER_TOP_P, top_k=mt_bench.ANSWER_TOP_K)
        report = mt_bench.run(config, lambda: generate or make_generator(sampling), make_judge)
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.output_dir) / "report.json").write_text(json.dumps(report, indent=1))
        return report if config.judgments else record(config, report)
    if config.benchmark == "alpaca_eval":  # the alpaca-eval package's protocol and files: zephyr/eval/alpaca_eval.py
        if config.annotations:
            return alpaca_eval.recompute(config)
        config = alpaca_eval.with_defaults(config, {f.name: f.default for f in dataclasses.fields(EvalConfig)})
        return record(config, alpaca_eval.run(config, (lambda _: generate) if generate else make_generator,
                                              make_judge))
    report = run_ifeval(config, generate)  # Google's checkers: zephyr/eval/ifeval.py
    return report if config.responses else record(config, report)


def record(config: EvalConfig, report: dict) -> dict:
    """The report's figures into the model card of a local --model folder (see zephyr/eval/card_results.py)."""
    if config.update_card:
        from .card_results import record_in_card

        card = record_in_card(config.model, report)
        if card:
            print(f"zephyr eval: results written into {card}", file=sys.stderr)
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
    else:  # replies kept as they finish: a rerun after a crash answers only the rest
        own = generate is None
        generate = generate or make_generator(config, resume=Path(config.output_dir) / "replies.partial.jsonl")
        try:
            responses = generate([[{"role": "user", "content": r["prompt"]}] for r in rows])
        finally:
            if own:
                generate.close()
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
    from .lm_eval_tasks import evaluate, plan, preset_table, summarize

    where, gguf_file = resolve(config.model)
    if gguf_file:
        raise ConfigError("lm_eval runs on a transformers checkpoint folder, not a .gguf file")
    runs, chat_template = plan(config.tasks, config.preset, config.num_fewshot, config.task_fewshot,
                               config.apply_chat_template)
    results = evaluate(where, runs, chat_template, config.batch_size,
                       "float32" if config.dtype == "auto" else config.dtype, include_path=config.include_path,
                       limit=config.limit or None)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "lm_eval", "model": config.model, "preset": config.preset or None,
              "apply_chat_template": chat_template, "num_fewshot": runs,
              "table": preset_table(results, config.preset) if config.preset else None,
              "results": summarize(results)}
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def main(argv: list[str] | None = None) -> int:
    config = parse_args(EvalConfig, argv, prog="zephyr eval", positional="benchmark")
    report = run(config)
    print(json.dumps(report, indent=1))
    return 0
