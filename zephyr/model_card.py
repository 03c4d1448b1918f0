"""Model cards in the style of the published Zephyr cards (zephyr-7b-sft-full, zephyr-7b-beta), filled from a run.

A training stage writes its card with one call, adding only what is its own:

    write_stage_card(cfg, trainer, result, description="Distilled supervised fine-tuning ...")
    write_stage_card(cfg, trainer, result, description="...", extra_hyperparameters={"beta": 0.1},
                     extra_columns={"Rewards/chosen": "eval_rewards/chosen", ...})

Underneath, any card from its parts:

    write_model_card(out / "README.md", model_name="zephyr-demo-sft", base_model="google/gemma-3-270m",
                     datasets=["zephyr/demo_data"], hyperparameters=hyperparameters(cfg, num_devices, ...),
                     results=results_rows(log_history), eval_metrics={"Loss": 1.23})

The training-results table has the published columns Training Loss | Epoch | Step | Validation Loss; a stage
adds its own (DPO: Rewards/chosen, Rewards/rejected, ... mapped from its eval metric names) via
`extra_columns={"Rewards/chosen": "eval_rewards/chosen", ...}`.
"""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path
from typing import Any, Sequence

from .errors import DataError

BASE_COLUMNS = {"Training Loss": "loss", "Epoch": "epoch", "Step": "step", "Validation Loss": "eval_loss"}
# accelerate's DistributedType -> the published cards' word
DISTRIBUTED_TYPES = {"NO": "single-device", "MULTI_GPU": "multi-GPU", "MULTI_CPU": "multi-CPU",
                     "DEEPSPEED": "deepspeed", "FSDP": "fsdp"}


def _number(value: Any) -> str:
    """Like transformers' card tables: floats with more than 4 decimals are rounded to 4, others printed as is."""
    if isinstance(value, float) and len(str(value).split(".")[-1]) > 4 and "e" not in str(value):
        return f"{value:.4f}"
    return str(value)


def hyperparameters(config: Any, num_devices: int, distributed_type: str, num_epochs: float | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The published cards' list, in their order, from a TrainConfig-like object."""
    ga = config.gradient_accumulation_steps
    values: dict[str, Any] = {
        "learning_rate": config.learning_rate,
        "train_batch_size": config.per_device_train_batch_size,
        "eval_batch_size": config.per_device_eval_batch_size,
        "seed": config.seed,
        "distributed_type": distributed_type,
        "num_devices": num_devices,
        "gradient_accumulation_steps": ga,
        "total_train_batch_size": config.per_device_train_batch_size * num_devices * ga,
        "total_eval_batch_size": config.per_device_eval_batch_size * num_devices,
        "optimizer": f"Adam with betas=({config.adam_beta1},{config.adam_beta2}) and epsilon={config.adam_epsilon}",
        "lr_scheduler_type": config.lr_scheduler_type,
        "lr_scheduler_warmup_ratio": config.warmup_ratio,
    }
    if config.max_steps > 0:
        values["training_steps"] = config.max_steps
    else:
        values["num_epochs"] = num_epochs if num_epochs is not None else config.num_train_epochs
    values.update(extra or {})
    return values


def results_rows(log_history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per evaluation: its metrics plus the latest training loss logged at or before it ('No log' if none)."""
    rows, last_loss = [], "No log"
    for record in log_history:
        if "loss" in record:
            last_loss = record["loss"]
        if "eval_loss" in record:
            rows.append({**record, "loss": last_loss})
    return rows


def framework_versions(adapter: bool = False) -> dict[str, str]:
    found = {}
    for label, dist in ((("PEFT", "peft"),) if adapter else ()) + (("Transformers", "transformers"), ("Pytorch", "torch"),
                        ("Accelerate", "accelerate"), ("Datasets", "datasets"), ("Tokenizers", "tokenizers")):
        try:
            found[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _table(rows: Sequence[dict[str, Any]], columns: dict[str, str]) -> list[str]:
    headers = list(columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(":" + "-" * max(len(h) - 2, 1) + ":" for h in headers) + "|"]
    for row in rows:
        cells = [_number(row[key]) if key in row else "" for key in columns.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_model_card(model_name: str, base_model: str, datasets: Sequence[str], hyperparameters: dict[str, Any],
                      results: Sequence[dict[str, Any]], eval_metrics: dict[str, float] | None = None,
                      extra_columns: dict[str, str] | None = None, description: str = "",
                      tags: Sequence[str] = ("zephyr", "generated_from_trainer"), license: str = "apache-2.0",
                      adapter: bool = False) -> str:
    columns = {**BASE_COLUMNS, **(extra_columns or {})}
    dataset_text = ", ".join(datasets) if datasets else "an unspecified"
    base_link = f"[{base_model}](https://huggingface.co/{base_model})" if "/" in base_model and not Path(
        base_model).exists() else base_model
    lines = ["---", f"license: {license}", f"base_model: {base_model}"]
    if adapter:
        lines.append("library_name: peft")
    lines += ["tags:"] + [f"- {t}" for t in tags]
    if datasets:
        lines += ["datasets:"] + [f"- {d}" for d in datasets]
    lines += ["model-index:", f"- name: {model_name}", "  results: []", "---", "", f"# {model_name}", "",
              f"This model is a fine-tuned version of {base_link} on the {dataset_text} dataset"
              f"{'s' if len(datasets) > 1 else ''}."]
    if eval_metrics:
        lines += ["It achieves the following results on the evaluation set:"]
        lines += [f"- {name}: {_number(value)}" for name, value in eval_metrics.items()]
    lines += ["", "## Model description", "", description or "More information needed", "",
              "## Intended uses & limitations", "", "More information needed", "",
              "## Training and evaluation data", "", "More information needed", "",
              "## Training procedure", "", "### Training hyperparameters", "",
              "The following hyperparameters were used during training:"]
    lines += [f"- {name}: {value}" for name, value in hyperparameters.items()]
    lines += ["", "### Training results", ""] + _table(results, columns)
    lines += ["", "### Framework versions", ""]
    lines += [f"- {name} {version}" for name, version in framework_versions(adapter).items()]
    return "\n".join(lines) + "\n"


def write_model_card(path: str | Path, **kwargs) -> Path:
    """Render (see `render_model_card`) and write README.md; returns the path."""
    path = Path(path)
    path.write_text(render_model_card(**kwargs))
    return path


def write_stage_card(cfg: Any, trainer: Any, result: Any, description: str,
                     extra_hyperparameters: dict[str, Any] | None = None,
                     extra_columns: dict[str, str] | None = None) -> Path:
    """output_dir/README.md of a finished training stage (a zephyr.train Trainer and its TrainResult).

    The stage gives its description, its own hyperparameters and its own results columns (card column -> eval
    metric); those columns' final values join the loss in the card's "results on the evaluation set"."""
    from .embedded import HUB_ID

    acc = trainer.accelerator
    kind = str(acc.distributed_type).split(".")[-1]
    epochs = result.global_step / trainer.steps_per_epoch
    params = hyperparameters(cfg, acc.num_processes, DISTRIBUTED_TYPES.get(kind, kind.lower()),
                             num_epochs=int(round(epochs)) if math.isclose(epochs, round(epochs)) else round(epochs, 4),
                             extra=extra_hyperparameters)
    columns = extra_columns or {}
    evals = result.eval_metrics
    eval_metrics = None
    if "eval_loss" in evals:
        eval_metrics = {"Loss": evals["eval_loss"],
                        **{name: evals[key] for name, key in columns.items() if key in evals}}
    return write_model_card(Path(cfg.output_dir) / "README.md",
                            model_name=cfg.hub_model_id or Path(cfg.output_dir).resolve().name,
                            base_model=HUB_ID if cfg.model == "embedded" else cfg.model,
                            datasets=[str(d) for d in cfg.dataset_mixer], hyperparameters=params,
                            results=results_rows(result.log_history), eval_metrics=eval_metrics,
                            extra_columns=columns, description=description, adapter=cfg.use_lora)


# --- evaluation results: model-index entries (the Zephyr cards' format) and a table in the card's text ---

EVAL_START, EVAL_END = "<!-- zephyr eval results: start -->", "<!-- zephyr eval results: end -->"


def _split_card(text: str, path: str) -> tuple[dict, str]:
    """(front-matter metadata, body) of a README.md; a card without front matter has empty metadata."""
    import yaml

    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            try:
                metadata = yaml.safe_load(text[4:end]) or {}
            except yaml.YAMLError as err:
                raise DataError(f"the card's front matter is not YAML ({err})", path) from None
            if not isinstance(metadata, dict):
                raise DataError("the card's front matter is not a mapping", path)
            return metadata, text[end + 5:]
    return {}, text


def _results_section(results: Sequence[Any]) -> str:
    lines = [EVAL_START, "## Evaluation results", "", "| Benchmark | Metric | Value | Source |", "|---|---|---:|---|"]
    for r in results:
        lines.append(f"| {r.dataset_name} | {r.metric_name or r.metric_type} | {_number(r.metric_value)} | "
                     f"{r.source_name or ''} |")
    return "\n".join(lines + [EVAL_END])


def model_index(name: str, results: Sequence[Any]) -> list[dict]:
    """The model-index as the Zephyr cards write it: one entry per result, with its own source (huggingface_hub's
    grouping would merge two results of one benchmark under one source, e.g. the same benchmark judged twice)."""
    def kept(**values):
        return {key: value for key, value in values.items() if value is not None}

    entries = [kept(task=kept(type=r.task_type, name=r.task_name),
                    dataset=kept(name=r.dataset_name, type=r.dataset_type, config=r.dataset_config,
                                 split=r.dataset_split, revision=r.dataset_revision, args=r.dataset_args),
                    metrics=[kept(type=r.metric_type, value=r.metric_value, name=r.metric_name,
                                  config=r.metric_config, args=r.metric_args, verified=r.verified,
                                  verifyToken=r.verify_token)],
                    source=kept(url=r.source_url, name=r.source_name) or None) for r in results]
    return [{"name": name, "results": entries}]


def record_eval_results(path: str | Path, results: Sequence[Any], model_name: str | None = None) -> Path:
    """Put evaluation results (huggingface_hub `EvalResult`s) into the card at `path`: its model-index results
    (a result with the same benchmark, metric and source as one there replaces it) and the "Evaluation results"
    table in its text, made from all of them. A missing card is created with just these."""
    import yaml
    from huggingface_hub.repocard_data import model_index_to_eval_results

    path = Path(path)
    metadata, body = _split_card(path.read_text(encoding="utf-8") if path.is_file() else "", str(path))
    name, known = model_name or path.parent.resolve().name, []
    if metadata.get("model-index"):
        try:
            index_name, known = model_index_to_eval_results(metadata["model-index"])
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise DataError(f"its model-index is not in the model-card format ({err!r})", str(path),
                            field="model-index") from None
        name = index_name or name
    for result in results:
        known = [r for r in known if not r.is_equal_except_value(result)] + [result]
    metadata["model-index"] = model_index(name, known)
    section = _results_section(known)
    if EVAL_START in body and EVAL_END in body:
        body = body[:body.index(EVAL_START)] + section + body[body.index(EVAL_END) + len(EVAL_END):]
    elif "\n## " in body:  # before the card's first section, where the Zephyr cards show their figures
        at = body.index("\n## ") + 1
        body = body[:at] + section + "\n\n" + body[at:]
    else:
        body = (body or f"\n# {name}\n").rstrip("\n") + "\n\n" + section + "\n"
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=10**6)
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path
