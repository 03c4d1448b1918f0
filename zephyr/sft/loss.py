"""The dSFT objective: negative log-likelihood of the assistant's tokens.

Zephyr's distilled SFT (Tunstall et al., 2023, "Zephyr: Direct Distillation of LM Alignment", Sec. 2.1) maximises
log pi(y | x) of the teacher's replies y given the dialogue so far x; prompt tokens, role headers and the user's
turns carry no loss. Returned as a *sum* with its token count so that the trainer normalises over the whole
optimizer step (exact gradient accumulation), as in transformers' `num_items_in_batch`.
"""

from __future__ import annotations

import torch


def sft_loss(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, int, dict[str, torch.Tensor]]:
    """model: a zephyr.train.TokenScorer; batch: zephyr.train.collate_rows output -> (NLL sum, targets, sums)."""
    logps, _ = model(batch["input_ids"], batch["position_ids"], batch["target_index"], batch["target_ids"],
                     segments=batch.get("segments"))
    return -logps.sum(), int(batch["n_targets"]), {}
