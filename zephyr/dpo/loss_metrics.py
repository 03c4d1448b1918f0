"""One micro-batch of pairs -> per-pair losses and the published cards' metrics, from the policy's and the
reference's summed completion log-probs (`pair_outputs`).

Metric meanings (those of TRL's DPOTrainer and of the zephyr-7b-beta / zephyr-7b-gemma cards):
  rewards/chosen, rewards/rejected  beta * (policy - reference) summed completion log-prob, mean over pairs
  rewards/accuracies                share of pairs whose chosen reward exceeds the rejected one
  rewards/margins                   mean of rewards/chosen - rewards/rejected
  logps/chosen, logps/rejected      mean over pairs of the policy's summed completion log-prob
  logits/chosen, logits/rejected    mean logit (over the vocabulary) averaged over all completion tokens
  nll_loss                          with rpo_alpha > 0: mean over pairs of the chosen reply's per-token NLL
Metrics travel as sums with their counts (`MetricSums`) so that gradient accumulation, several batches and
several processes combine exactly, then `means()` divides once.
"""

from __future__ import annotations


import torch

from .layout import PairBatch, completion_logps
from .losses import LossConfig, PairLogps, chosen_nll

METRIC_NAMES = ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected")


class MetricSums(dict):
    """name -> [sum, count]; `merge` combines, `means()` gives the logged values. Tensors stay on their device
    (float64: as exact as Python floats) so that a training step reads nothing back; `mean_tensors()` keeps them
    there, `means()` converts (at logging time)."""

    def add(self, name: str, total: float | torch.Tensor, count: float | torch.Tensor) -> None:
        s = self.setdefault(name, [0.0, 0.0])
        s[0] = _plus(s[0], total)
        s[1] = _plus(s[1], count)

    def merge(self, other: "MetricSums") -> "MetricSums":
        for name, (total, count) in other.items():
            self.add(name, total, count)
        return self

    def mean_tensors(self) -> dict[str, float | torch.Tensor]:
        """sum / count per name (0 where the count is 0), without reading device values back."""
        return {name: _mean(total, count) for name, (total, count) in self.items()}

    def means(self) -> dict[str, float]:
        return {name: float(mean) for name, mean in self.mean_tensors().items()}


def _plus(total: float | torch.Tensor, value: float | torch.Tensor) -> float | torch.Tensor:
    if torch.is_tensor(value):
        return value.detach().to(torch.float64) + total
    return total + float(value)


def _mean(total: float | torch.Tensor, count: float | torch.Tensor) -> float | torch.Tensor:
    if torch.is_tensor(count):
        return torch.where(count != 0, total / count, 0.0)
    return total / count if count else 0.0 * total


def pair_outputs(model, batch: PairBatch, settings: LossConfig, reference) -> tuple[torch.Tensor, MetricSums]:
    """-> (per-pair losses [pairs] with grad, metric sums). `model`: the policy (see `completion_logps`). The
    reference log-probs come from the batch when precomputed, else from `reference(model, batch) -> (chosen,
    rejected)`; reference-free losses need neither."""
    scores = completion_logps(model, batch)
    chosen, rejected = scores.logps.chunk(2)
    if settings.loss.reference_free:
        ref_chosen, ref_rejected = torch.zeros_like(chosen), torch.zeros_like(rejected)
    elif batch.ref_chosen is not None:  # precomputed
        ref_chosen, ref_rejected = batch.ref_chosen.to(chosen), batch.ref_rejected.to(rejected)
    elif reference is not None:
        ref_chosen, ref_rejected = (t.to(chosen) for t in reference(model, batch))
    else:
        raise ValueError(f"the {settings.loss_type!r} loss needs reference log-probs: none were given")
    logps = PairLogps(chosen, rejected, ref_chosen, ref_rejected,
                      batch.chosen_tokens.to(chosen), batch.rejected_tokens.to(chosen))
    losses = settings.loss(logps)
    sums = metric_sums(losses, logps, scores.logit_sums, settings.beta)
    if settings.rpo_alpha:
        sums.add("nll_loss", chosen_nll(logps).detach().sum(), len(losses))
    return losses, sums


@torch.no_grad()
def metric_sums(losses: torch.Tensor, p: PairLogps, logit_sums: torch.Tensor, beta: float) -> MetricSums:
    n = len(losses)
    reward_c = beta * (p.chosen - p.ref_chosen).detach()
    reward_r = beta * (p.rejected - p.ref_rejected).detach()
    logit_c, logit_r = logit_sums.chunk(2)
    m = MetricSums()
    m.add("loss", losses.detach().sum(), n)
    m.add("rewards/chosen", reward_c.sum(), n)
    m.add("rewards/rejected", reward_r.sum(), n)
    m.add("rewards/accuracies", (reward_c > reward_r).float().sum(), n)
    m.add("rewards/margins", (reward_c - reward_r).sum(), n)
    m.add("logps/chosen", p.chosen.detach().sum(), n)
    m.add("logps/rejected", p.rejected.detach().sum(), n)
    m.add("logits/chosen", logit_c.sum(), p.chosen_tokens.sum())
    m.add("logits/rejected", logit_r.sum(), p.rejected_tokens.sum())
    return m
