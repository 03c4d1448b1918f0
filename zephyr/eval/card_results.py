"""An evaluation report's figures as model-card results, in the format of the Zephyr cards' model-index
(../shared/model_cards/zephyr-7b-gemma-v0.1.md): one `EvalResult` per published number, written into the card
of the evaluated model folder by `zephyr.model_card.record_eval_results`."""

from __future__ import annotations

from pathlib import Path

FASTCHAT_URL = "https://github.com/lm-sys/FastChat/tree/main/fastchat/llm_judge"
ALPACA_EVAL_URL = "https://tatsu-lab.github.io/alpaca_eval/"
IFEVAL_URL = "https://github.com/google-research/google-research/tree/master/instruction_following_eval"
LM_EVAL_URL = "https://github.com/EleutherAI/lm-evaluation-harness"


def _result(value: float, dataset_name: str, dataset_type: str, metric_type: str, source_url: str,
            source_name: str | None = None, **fields):
    from huggingface_hub import EvalResult

    return EvalResult(task_type="text-generation", task_name="Text Generation", dataset_name=dataset_name,
                      dataset_type=dataset_type, metric_type=metric_type, metric_value=value,
                      source_url=source_url, source_name=source_name, **fields)


def mt_bench_results(report: dict) -> list:
    if report.get("score") is None:
        return []
    return [_result(round(report["score"], 2), "MT-Bench", "unknown", "unknown", FASTCHAT_URL,
                    f"FastChat llm_judge, judge {report['judge']}", metric_name="score")]


def alpaca_eval_results(report: dict) -> list:
    source = f"alpaca_eval, annotator {report['annotator']}" if report.get("annotator") else "alpaca_eval"
    found = []
    for key, name in (("length_controlled_winrate", "length-controlled win rate"), ("win_rate", "win rate")):
        if isinstance(report.get(key), (int, float)):
            found.append(_result(round(report[key], 2), "AlpacaEval", "tatsu-lab/alpaca_eval", "unknown",
                                 ALPACA_EVAL_URL, source, metric_name=name))
    return found


def ifeval_results(report: dict) -> list:
    found = []
    for key in ("prompt_level_strict", "instruction_level_strict", "prompt_level_loose", "instruction_level_loose"):
        value = report.get(key, report.get(key + "_acc"))
        if isinstance(value, (int, float)):
            found.append(_result(round(value, 2), "IFEval (0-Shot)", "google/IFEval", key + "_acc", IFEVAL_URL,
                                 "IFEval", metric_name=key.replace("_", " ") + " accuracy",
                                 dataset_args={"num_few_shot": 0}))
    return found


def lm_eval_results(report: dict) -> list:
    from .lm_eval_tasks import PRESETS

    source = f"lm-evaluation-harness, {'chat template' if report.get('apply_chat_template') else 'no chat template'}"
    if report.get("preset"):
        return [_result(report["table"][figure.label], **figure.card, source_url=LM_EVAL_URL, source_name=source)
                for figure in PRESETS[report["preset"]].figures]
    found = []
    for task, metrics in report["results"].items():
        shots = report.get("num_fewshot", {}).get(task)
        args = {"num_few_shot": shots} if shots is not None else None
        for metric, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not metric.endswith("_stderr"):
                found.append(_result(round(100 * value, 2), task, task, metric, LM_EVAL_URL, source,
                                     dataset_args=args))
    return found


RESULTS = {"mt_bench": mt_bench_results, "alpaca_eval": alpaca_eval_results, "ifeval": ifeval_results,
           "lm_eval": lm_eval_results}


def record_in_card(model: str, report: dict) -> Path | None:
    """Write the report's figures into <model>/README.md when `model` is a local checkpoint folder; None when it
    is not (a hub id, `embedded`, a .gguf file) or the report has no figure."""
    from ..model_card import record_eval_results

    folder = Path(model)
    results = RESULTS[report["benchmark"]](report)
    if not results or not folder.is_dir():
        return None
    return record_eval_results(folder / "README.md", results)
