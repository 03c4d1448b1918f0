"""Preference evaluation on held-out pairs: how often a model prefers the chosen completion.

Two figures, both over the same pairs:
- preference accuracy: share of pairs with log pi(chosen | x) > log pi(rejected | x) (summed over completion
  tokens) - meaningful for any model, so the SFT model and the DPO model can be compared directly;
- rewards/accuracies: the DPO metric, share of pairs whose implicit reward beta*(log pi - log pi_ref) is higher
  for the chosen completion, for a model measured against a reference (the DPO model against its SFT model).

A DPO run with a precomputed reference leaves its held-out reference scores in its output folder
(`reference_test.safetensors`, see `write_pair_scores`), so `zephyr run` evaluates against them without scoring
the SFT model again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .layout import collate, completion_logps
from .tokenize import TokenizedPair

REFERENCE_SCORES = "reference_test.safetensors"  # in a DPO run's output folder


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


def write_pair_scores(path: str | Path, pairs: list[TokenizedPair], scores: PairScores,
                      identity: dict[str, str]) -> Path:
    """Per-pair scores as safetensors: `index` [pairs] (each pair's position in its split), `chosen` and
    `rejected` [pairs] (summed completion log-probs, float32); `identity` (what was scored: the pairs' token
    ids, the model, its dtype) goes into the file's metadata. Written atomically: a reader never sees half a file."""
    from safetensors.torch import save_file

    path = Path(path)
    staging = path.with_name(f"{path.name}.{os.getpid()}.partial")
    tensors = {"index": torch.tensor([p.index for p in pairs], dtype=torch.long),
               "chosen": scores.chosen.float().contiguous(), "rejected": scores.rejected.float().contiguous()}
    save_file(tensors, str(staging), metadata=identity)
    staging.replace(path)
    return path


def read_pair_scores(path: str | Path, pairs: list[TokenizedPair], identity: dict[str, str]) -> PairScores | None:
    """The scores of `pairs`, in their order, from a `write_pair_scores` file with the same identity; None when
    the file is missing, describes other pairs or another model, or lacks one of the pairs."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        if handle.metadata() != identity:
            return None
        index, chosen, rejected = (handle.get_tensor(name) for name in ("index", "chosen", "rejected"))
    row = {i: r for r, i in enumerate(index.tolist())}
    if any(p.index not in row for p in pairs):
        return None
    take = torch.tensor([row[p.index] for p in pairs], dtype=torch.long)
    return PairScores(chosen[take], rejected[take])
