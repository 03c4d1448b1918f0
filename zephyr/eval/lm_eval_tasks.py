"""Academic benchmarks through EleutherAI's lm-evaluation-harness (extra `[lm-eval]`), as the published tables
ran them: a preset fixes the tasks, each task's few-shot count, whether the chat template is applied, and which
metric (averaged how) makes each figure.

- open_llm_v1: the Open LLM Leaderboard v1 (the zh card's table; LLM AutoEval's "openllm"): ARC-challenge 25-shot
  acc_norm, HellaSwag 10-shot acc_norm, MMLU 5-shot acc (the mean over its 57 subjects, as the leaderboard
  averaged them), TruthfulQA mc2 0-shot, Winogrande 5-shot acc, GSM8K 5-shot exact match (strict "#### N");
  no chat template. The leaderboard ran harness commit b281b09; lm-eval 0.4's prompts for these tasks follow it.
- open_llm_v2: the v2 leaderboard's `leaderboard` task group of lm-eval (IFEval 0-shot, BBH 3-shot, MATH level 5
  4-shot, GPQA 0-shot, MuSR 0-shot, MMLU-Pro 5-shot; shots from the task YAMLs), chat template applied with
  few-shot examples as turns, as the leaderboard ran chat models. The leaderboard shows these rescaled
  between the random baseline and 100; the figures here are the harness's raw ones.
- nous: the gemma card's AGIEval / GPT4All / TruthfulQA / BigBench table, made by LLM AutoEval's "nous" run of
  dmahan93/lm-evaluation-harness@add-agieval: every task 0-shot, no chat template; AGIEval = mean acc_norm of
  its 8 English tasks, GPT4All = mean of acc_norm (acc where a task has none) over 7 tasks, TruthfulQA = mc2,
  BigBench = mean multiple-choice accuracy. lm-eval 0.4 has that AGIEval set (`agieval_nous`); its BIG-bench
  tasks come from hails/bigbench, where logical_deduction and tracking_shuffled_objects are one task each
  (14 tasks for the old harness's 18), so BigBench is the closest available, not the same set.

The harness loads task data from the hub; `include_path` adds local task YAMLs.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Figure:
    """One number of a published table: the mean over `tasks` (a group counts as its leaf tasks, unweighted) of
    the first of `metrics` each task reports, in percent; `card` describes it in the model card's model-index."""

    label: str
    tasks: tuple[str, ...]
    metrics: tuple[str, ...]
    num_fewshot: int | None  # None: each task's own (its YAML's)
    card: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Preset:
    figures: tuple[Figure, ...]
    apply_chat_template: bool
    average: bool  # the tables add the mean of their figures

    def runs(self) -> dict[str, int | None]:
        return {task: figure.num_fewshot for figure in self.figures for task in figure.tasks}


def _card(name: str, dataset: str, metric: str, metric_name: str | None = None, **extra) -> dict:
    return {"dataset_name": name, "dataset_type": dataset, "metric_type": metric, "metric_name": metric_name,
            **extra}


GPT4ALL = ("hellaswag", "openbookqa", "winogrande", "arc_easy", "arc_challenge", "boolq", "piqa")
BIGBENCH = tuple(f"bigbench_{name}_multiple_choice" for name in (
    "causal_judgment", "date_understanding", "disambiguation_qa", "geometric_shapes", "logical_deduction",
    "movie_recommendation", "navigate", "reasoning_about_colored_objects", "ruin_names",
    "salient_translation_error_detection", "snarks", "sports_understanding", "temporal_sequences",
    "tracking_shuffled_objects"))
PRESETS = {
    "open_llm_v1": Preset((
        Figure("ARC (25-shot)", ("arc_challenge",), ("acc_norm,none",), 25,
               _card("AI2 Reasoning Challenge (25-Shot)", "ai2_arc", "acc_norm", "normalized accuracy",
                     dataset_config="ARC-Challenge", dataset_split="test", dataset_args={"num_few_shot": 25})),
        Figure("HellaSwag (10-shot)", ("hellaswag",), ("acc_norm,none",), 10,
               _card("HellaSwag (10-Shot)", "hellaswag", "acc_norm", "normalized accuracy",
                     dataset_split="validation", dataset_args={"num_few_shot": 10})),
        Figure("MMLU (5-shot)", ("mmlu",), ("acc,none",), 5,
               _card("MMLU (5-Shot)", "cais/mmlu", "acc", "accuracy", dataset_config="all", dataset_split="test",
                     dataset_args={"num_few_shot": 5})),
        Figure("TruthfulQA (0-shot)", ("truthfulqa_mc2",), ("acc,none",), 0,
               _card("TruthfulQA (0-shot)", "truthful_qa", "mc2", dataset_config="multiple_choice",
                     dataset_split="validation", dataset_args={"num_few_shot": 0})),
        Figure("Winogrande (5-shot)", ("winogrande",), ("acc,none",), 5,
               _card("Winogrande (5-shot)", "winogrande", "acc", "accuracy", dataset_config="winogrande_xl",
                     dataset_split="validation", dataset_args={"num_few_shot": 5})),
        Figure("GSM8K (5-shot)", ("gsm8k",), ("exact_match,strict-match",), 5,
               _card("GSM8k (5-shot)", "gsm8k", "acc", "accuracy", dataset_config="main", dataset_split="test",
                     dataset_args={"num_few_shot": 5})),
    ), apply_chat_template=False, average=True),
    "open_llm_v2": Preset((
        Figure("IFEval (0-shot, prompt strict)", ("leaderboard_ifeval",), ("prompt_level_strict_acc,none",), None,
               _card("IFEval (0-Shot)", "HuggingFaceH4/ifeval", "prompt_level_strict_acc", "strict accuracy",
                     dataset_args={"num_few_shot": 0})),
        Figure("IFEval (0-shot, instruction strict)", ("leaderboard_ifeval",), ("inst_level_strict_acc,none",),
               None, _card("IFEval (0-Shot)", "HuggingFaceH4/ifeval", "inst_level_strict_acc", "strict accuracy",
                           dataset_args={"num_few_shot": 0})),
        Figure("BBH (3-shot)", ("leaderboard_bbh",), ("acc_norm,none",), None,
               _card("BBH (3-Shot)", "BBH", "acc_norm", "normalized accuracy", dataset_args={"num_few_shot": 3})),
        Figure("MATH Lvl 5 (4-shot)", ("leaderboard_math_hard",), ("exact_match,none",), None,
               _card("MATH Lvl 5 (4-Shot)", "hendrycks/competition_math", "exact_match", "exact match",
                     dataset_args={"num_few_shot": 4})),
        Figure("GPQA (0-shot)", ("leaderboard_gpqa",), ("acc_norm,none",), None,
               _card("GPQA (0-shot)", "Idavidrein/gpqa", "acc_norm", "acc_norm", dataset_args={"num_few_shot": 0})),
        Figure("MuSR (0-shot)", ("leaderboard_musr",), ("acc_norm,none",), None,
               _card("MuSR (0-shot)", "TAUR-Lab/MuSR", "acc_norm", "acc_norm", dataset_args={"num_few_shot": 0})),
        Figure("MMLU-PRO (5-shot)", ("leaderboard_mmlu_pro",), ("acc,none",), None,
               _card("MMLU-PRO (5-shot)", "TIGER-Lab/MMLU-Pro", "acc", "accuracy", dataset_config="main",
                     dataset_split="test", dataset_args={"num_few_shot": 5})),
    ), apply_chat_template=True, average=False),
    "nous": Preset((
        Figure("AGIEval", ("agieval_nous",), ("acc_norm,none", "acc,none"), 0,
               _card("AGIEval (Nous, 0-shot)", "agieval", "acc_norm", "mean normalized accuracy")),
        Figure("GPT4All", GPT4ALL, ("acc_norm,none", "acc,none"), 0,
               _card("GPT4All (Nous, 0-shot)", "gpt4all", "acc_norm", "mean accuracy (normalized where reported)")),
        Figure("TruthfulQA", ("truthfulqa_mc2",), ("acc,none",), 0,
               _card("TruthfulQA (Nous, 0-shot)", "truthful_qa", "mc2", dataset_config="multiple_choice")),
        Figure("BigBench", BIGBENCH, ("acc,none",), 0,
               _card("BigBench (Nous, 0-shot)", "bigbench", "multiple_choice_grade", "mean accuracy")),
    ), apply_chat_template=False, average=True),
}


def parse_task_fewshot(entries: list[str]) -> dict[str, int]:
    counts = {}
    for entry in entries:
        task, _, count = entry.partition("=")
        if not task or not count.isdigit():
            raise ConfigError(f"--task_fewshot: {entry!r} is not TASK=N (e.g. arc_challenge=25)")
        counts[task] = int(count)
    return counts


def check_settings(tasks: list[str], preset: str, task_fewshot: list[str]) -> None:
    if preset and preset not in PRESETS:
        raise ConfigError(f"--preset: unknown {preset!r}; choose one of {', '.join(PRESETS)}")
    if not tasks and not preset:
        raise ConfigError("lm_eval needs --tasks (harness task names) or --preset")
    parse_task_fewshot(task_fewshot)


def plan(tasks: list[str], preset: str, num_fewshot: int | None, task_fewshot: list[str],
         apply_chat_template: bool | None) -> tuple[dict[str, int | None], bool]:
    """-> ({task: few-shot count (None: the task's own)}, apply the chat template?)"""
    chosen = PRESETS[preset] if preset else None
    runs = chosen.runs() if chosen else {}
    runs.update({task: num_fewshot for task in tasks})
    runs.update(parse_task_fewshot(task_fewshot))
    template = apply_chat_template if apply_chat_template is not None else bool(chosen and chosen.apply_chat_template)
    return runs, template


def evaluate(model_dir: str, runs: dict[str, int | None], apply_chat_template: bool, batch_size: int = 8,
             dtype: str = "float32", include_path: str = "", limit: int | None = None,
             log_samples: bool = False) -> dict:
    """One model load; one harness run per few-shot count; the runs' results merged into one lm-eval result
    dict (`results`, `group_subtasks`, `n-shot`, `configs`, and `samples` when log_samples)."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as err:
        raise RuntimeError("lm-eval tasks need the harness: pip install -e '.[lm-eval]'") from err
    manager = TaskManager(include_path=include_path or None)
    model = HFLM(pretrained=model_dir, dtype=dtype, batch_size=batch_size, device="cuda" if _cuda() else "cpu")
    merged: dict = {"results": {}, "group_subtasks": {}, "n-shot": {}, "configs": {}, "samples": {}}
    by_shots: dict[int | None, list[str]] = {}
    for task, shots in runs.items():
        by_shots.setdefault(shots, []).append(task)
    for shots, tasks in by_shots.items():
        results = lm_eval.simple_evaluate(
            model=model, tasks=tasks, num_fewshot=shots, task_manager=manager, limit=limit,
            apply_chat_template=apply_chat_template, fewshot_as_multiturn=apply_chat_template,
            log_samples=log_samples)
        for key in merged:
            merged[key].update(results.get(key) or {})
    return merged


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def summarize(results: dict) -> dict:
    """{task: {metric: value}} without lm-eval's bookkeeping keys."""
    return {task: {k.split(",")[0]: v for k, v in metrics.items() if k not in ("alias", "name") and
                   not k.startswith(("sample_len",))}
            for task, metrics in results["results"].items()}


def leaves(results: dict, task: str) -> list[str]:
    children = results.get("group_subtasks", {}).get(task)
    return [leaf for child in children for leaf in leaves(results, child)] if children else [task]


def figure_value(results: dict, figure: Figure) -> float:
    """The figure in percent: the unweighted mean over its leaf tasks of each one's first available metric."""
    values = []
    for task in [leaf for name in figure.tasks for leaf in leaves(results, name)]:
        metrics = results["results"].get(task, {})
        found = next((metrics[m] for m in figure.metrics if isinstance(metrics.get(m), (int, float))), None)
        if found is None:
            raise ConfigError(f"lm-eval reported none of {', '.join(figure.metrics)} for {task}")
        values.append(found)
    return round(100 * sum(values) / len(values), 2)


def preset_table(results: dict, preset: str) -> dict[str, float]:
    """{figure label: value in percent}, plus "Average" where the published table has one."""
    chosen = PRESETS[preset]
    table = {figure.label: figure_value(results, figure) for figure in chosen.figures}
    if chosen.average:
        table["Average"] = round(sum(table.values()) / len(table), 2)
    return table
