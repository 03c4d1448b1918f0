"""The DPO model card: the shared card (zephyr.model_card) with the zephyr-7b-beta card's result columns."""

from __future__ import annotations

import math
from pathlib import Path

from ..model_card import hyperparameters, results_rows, write_model_card

# card column -> eval metric, in the published cards' order
DPO_COLUMNS = {
    "Rewards/chosen": "eval_rewards/chosen", "Rewards/rejected": "eval_rewards/rejected",
    "Rewards/accuracies": "eval_rewards/accuracies", "Rewards/margins": "eval_rewards/margins",
    "Logps/rejected": "eval_logps/rejected", "Logps/chosen": "eval_logps/chosen",
    "Logits/rejected": "eval_logits/rejected", "Logits/chosen": "eval_logits/chosen",
}


def write_dpo_card(cfg, trainer, result, truncation: dict, reference: str) -> Path:
    acc = trainer.accelerator
    kind = str(acc.distributed_type).split(".")[-1]
    distributed = {"NO": "single-device", "MULTI_GPU": "multi-GPU", "MULTI_CPU": "multi-CPU",
                   "DEEPSPEED": "deepspeed", "FSDP": "fsdp"}.get(kind, kind.lower())
    epochs = result.global_step / trainer.steps_per_epoch
    params = hyperparameters(cfg, acc.num_processes, distributed,
                             num_epochs=int(round(epochs)) if math.isclose(epochs, round(epochs)) else round(epochs, 4),
                             extra={"beta": cfg.beta, "loss_type": cfg.loss_type, "max_length": cfg.max_length,
                                    "max_prompt_length": cfg.max_prompt_length})
    evals = result.eval_metrics
    eval_metrics = None
    if "eval_loss" in evals:
        eval_metrics = {"Loss": evals["eval_loss"],
                        **{name: evals[key] for name, key in DPO_COLUMNS.items() if key in evals}}
    base = "google/gemma-3-270m" if cfg.model == "embedded" else cfg.model
    name = cfg.hub_model_id or Path(cfg.output_dir).resolve().name
    description = (f"Distilled direct preference optimisation (dDPO, `{cfg.loss_type}` loss, beta {cfg.beta}) on "
                   f"chosen/rejected pairs; reference log-probs: {reference}; `{cfg.chat_template}` chat template. "
                   f"Truncation - train: {truncation['train'].summary()}; test: {truncation['test'].summary()}.")
    return write_model_card(Path(cfg.output_dir) / "README.md", model_name=name, base_model=base,
                            datasets=[str(d) for d in cfg.dataset_mixer], hyperparameters=params,
                            results=results_rows(result.log_history), eval_metrics=eval_metrics,
                            extra_columns=DPO_COLUMNS, description=description, adapter=cfg.use_lora)
