"""The DPO model card's own parts: the zephyr-7b-beta card's result columns, DPO hyperparameters, a description."""

from __future__ import annotations

from pathlib import Path

from ..model_card import write_stage_card

# card column -> eval metric, in the published cards' order
DPO_COLUMNS = {
    "Rewards/chosen": "eval_rewards/chosen", "Rewards/rejected": "eval_rewards/rejected",
    "Rewards/accuracies": "eval_rewards/accuracies", "Rewards/margins": "eval_rewards/margins",
    "Logps/rejected": "eval_logps/rejected", "Logps/chosen": "eval_logps/chosen",
    "Logits/rejected": "eval_logits/rejected", "Logits/chosen": "eval_logits/chosen",
}


def write_dpo_card(cfg, trainer, result, truncation: dict, reference: str) -> Path:
    description = (f"Distilled direct preference optimisation (dDPO, `{cfg.loss_type}` loss, beta {cfg.beta}) on "
                   f"chosen/rejected pairs; reference log-probs: {reference}; `{cfg.chat_template}` chat template. "
                   f"Truncation - train: {truncation['train'].summary()}; test: {truncation['test'].summary()}.")
    return write_stage_card(cfg, trainer, result, description,
                            extra_hyperparameters={"beta": cfg.beta, "loss_type": cfg.loss_type,
                                                   "max_length": cfg.max_length,
                                                   "max_prompt_length": cfg.max_prompt_length},
                            extra_columns=DPO_COLUMNS)
