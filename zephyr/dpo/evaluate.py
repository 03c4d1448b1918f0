"""Preference evaluation on held-out pairs: how often a model prefers the chosen completion.

Two figures, both over the same pairs:
- preference accuracy: share of pairs with log pi(chosen | x) > log pi(rejected | x) (summed over completion
  tokens) - meaningful for any model, so the SFT model and the DPO model can be compared directly;
- rewards/accuracies: the DPO metric, share of pairs whose implicit reward beta*(log pi - log pi_ref) is higher
  for the chosen completion, for a model measured against a reference (the DPO model against its SFT model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .layout import collate, completion_logps
from .tokenize import TokenizedPair


@dataclass
class PairScores:
    chosen: torch.Tensor    # [pairs] summed completion log-probs
    rejected: torch.Tensor


@torch.no_grad()
def score_pairs(model, pairs: list[TokenizedPair], batch_size: int = 8, pad_id: int = 0, layout: str = "shared",
                desc: str = "scoring pairs") -> PairScores:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    try:
        for start in tqdm(range(0, len(pairs), batch_size), desc=desc, unit="batch"):
            batch = collate(pairs[start:start + batch_size], layout, pad_id).to(device)
            c, r = completion_logps(model, batch).logps.float().cpu().chunk(2)
            chosen.append(c)
            rejected.append(r)
    finally:
        model.train(was_training)
    return PairScores(torch.cat(chosen), torch.cat(rejected))


def preference_accuracy(s: PairScores) -> float:
    return (s.chosen > s.rejected).float().mean().item()


def reward_metrics(policy: PairScores, reference: PairScores, beta: float) -> dict[str, float]:
    """rewards/* of `policy` against `reference` (the DPO trainer's eval metrics, from per-pair log-probs)."""
    chosen = beta * (policy.chosen - reference.chosen)
    rejected = beta * (policy.rejected - reference.rejected)
    return {"rewards/chosen": chosen.mean().item(), "rewards/rejected": rejected.mean().item(),
            "rewards/accuracies": (chosen > rejected).float().mean().item(),
            "rewards/margins": (chosen - rejected).mean().item()}
