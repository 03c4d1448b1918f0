"""Academic benchmarks (ARC, HellaSwag, MMLU, TruthfulQA, Winogrande, GSM8K, ...) through EleutherAI's
lm-evaluation-harness (extra `[lm-eval]`), on a zephyr checkpoint with its own chat template applied.

The harness loads task data from the hub; `include_path` adds local task YAMLs (e.g. over JSONL files).
"""

from __future__ import annotations


def evaluate(model_dir: str, tasks: list[str], num_fewshot: int | None = None, batch_size: int = 8,
             dtype: str = "float32", apply_chat_template: bool = True, include_path: str = "",
             limit: int | None = None, log_samples: bool = False) -> dict:
    """-> lm-eval's result dict (`results`, `configs`, and `samples` when log_samples)."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError as err:
        raise RuntimeError("lm-eval tasks need the harness: pip install -e '.[lm-eval]'") from err
    manager = TaskManager(include_path=include_path or None)
    return lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype={dtype}", tasks=tasks, num_fewshot=num_fewshot,
        batch_size=batch_size, device="cpu" if not _cuda() else "cuda", task_manager=manager,
        apply_chat_template=apply_chat_template, limit=limit, log_samples=log_samples)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def summarize(results: dict) -> dict:
    """{task: {metric: value}} without lm-eval's bookkeeping keys."""
    return {task: {k.split(",")[0]: v for k, v in metrics.items() if k not in ("alias", "name") and
                   not k.startswith(("sample_len",))}
            for task, metrics in results["results"].items()}
