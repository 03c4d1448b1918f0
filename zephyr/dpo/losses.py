"""Preference losses: one small function each, per pair, from summed completion log-probabilities.

Every loss takes a `PairLogps` (policy and reference log-probs of the chosen and rejected completions, each
summed over the completion's tokens, plus the completions' token counts) and returns the per-pair loss; the
trainer averages over pairs. `delta` below is the DPO implicit-reward margin before beta:
(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x)).

A new loss is a function here plus one `LOSSES` entry that binds it to `LossConfig`'s fields (a new
hyperparameter is a `LossConfig` field, also here); `make_loss(cfg)` builds it, and its `reference_free` tells
the trainer whether reference log-probs are needed at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..config import field as config_field
from ..errors import ConfigError


@dataclass
class PairLogps:
    chosen: torch.Tensor            # [pairs] policy log pi(y_w | x), summed over completion tokens
    rejected: torch.Tensor          # [pairs] policy log pi(y_l | x)
    ref_chosen: torch.Tensor        # [pairs] reference log-probs (zeros for reference-free losses)
    ref_rejected: torch.Tensor
    chosen_tokens: torch.Tensor     # [pairs] number of completion tokens (for length-normalised losses)
    rejected_tokens: torch.Tensor

    def delta(self) -> torch.Tensor:
        return (self.chosen - self.ref_chosen) - (self.rejected - self.ref_rejected)


def sigmoid(p: PairLogps, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """DPO (Rafailov et al. 2023, eq. 7): -log sigmoid(beta * delta).

    With label_smoothing = eps > 0 it is conservative DPO (cDPO, Mitchell 2023): the preference label is assumed
    flipped with probability eps, so the loss is the expectation over both labels.
    """
    logits = beta * p.delta()
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


def ipo(p: PairLogps, beta: float) -> torch.Tensor:
    """IPO (Azar et al. 2023, eq. 17): (h - 1/(2 tau))^2 with tau = beta.

    h is the log-ratio margin with each completion's log-ratio averaged over its tokens, as the IPO authors
    confirmed their results use (and as TRL computes it), so that beta means the same at any completion length.
    """
    chosen = (p.chosen - p.ref_chosen) / p.chosen_tokens.clamp(min=1)
    rejected = (p.rejected - p.ref_rejected) / p.rejected_tokens.clamp(min=1)
    return (chosen - rejected - 1 / (2 * beta)) ** 2


def hinge(p: PairLogps, beta: float) -> torch.Tensor:
    """SLiC-HF calibration loss (Zhao et al. 2023, eq. 1) on DPO's log-ratios: max(0, 1 - beta * delta),
    i.e. a margin of 1/beta between chosen and rejected."""
    return torch.relu(1 - beta * p.delta())


def robust(p: PairLogps, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Robust DPO (Chowdhury et al. 2024, eq. 8): an unbiased estimate of the DPO loss when labels are flipped
    with known rate eps = label_smoothing < 0.5."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"robust DPO needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
    logits = beta * p.delta()
    clean = -(1 - label_smoothing) * F.logsigmoid(logits)
    flipped = -label_smoothing * F.logsigmoid(-logits)
    return (clean - flipped) / (1 - 2 * label_smoothing)


def chosen_nll(p: PairLogps) -> torch.Tensor:
    """RPO's added term (Pang et al. 2024, "Iterative Reasoning Preference Optimization", eq. 1): the chosen
    completion's negative log-likelihood under the policy, averaged over its tokens, -log pi(y_w|x) / |y_w|.
    Added to a preference loss with weight alpha it keeps the chosen replies likely, so the policy cannot win
    the margin by pushing both completions down (TRL: loss_type ["sigmoid", "sft"] with weights [1, alpha])."""
    return -p.chosen / p.chosen_tokens.clamp(min=1)


def simpo(p: PairLogps, beta: float, gamma: float = 0.5, label_smoothing: float = 0.0) -> torch.Tensor:
    """SimPO (Meng et al. 2024, eq. 6): reference-free, length-normalised:
    -log sigmoid(beta/|y_w| log pi(y_w|x) - beta/|y_l| log pi(y_l|x) - gamma), gamma the target reward margin."""
    chosen = p.chosen / p.chosen_tokens.clamp(min=1)
    rejected = p.rejected / p.rejected_tokens.clamp(min=1)
    logits = beta * (chosen - rejected) - gamma
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


@dataclass(frozen=True)
class Loss:
    """A loss bound to its hyperparameters: loss(p) -> per-pair losses [pairs]."""

    formula: Callable[..., torch.Tensor]
    kwargs: dict[str, Any] = field(default_factory=dict)
    reference_free: bool = False  # the reference log-probs play no part (none are computed)
    nll_weight: float = 0.0  # RPO's alpha: weight of `chosen_nll` added to each pair's loss

    def __call__(self, p: PairLogps) -> torch.Tensor:
        losses = self.formula(p, **self.kwargs)
        return losses + self.nll_weight * chosen_nll(p) if self.nll_weight else losses


# name -> how to build the loss from a LossConfig's fields
LOSSES: dict[str, Callable[[Any], Loss]] = {
    "sigmoid": lambda c: Loss(sigmoid, {"beta": c.beta, "label_smoothing": c.label_smoothing}),
    "ipo": lambda c: Loss(ipo, {"beta": c.beta}),
    "hinge": lambda c: Loss(hinge, {"beta": c.beta}),
    "robust": lambda c: Loss(robust, {"beta": c.beta, "label_smoothing": c.label_smoothing}),
    "simpo": lambda c: Loss(simpo, {"beta": c.beta, "gamma": c.simpo_gamma, "label_smoothing": c.label_smoothing},
                            reference_free=True),
}


def make_loss(cfg) -> Loss:
    """The loss `cfg.loss_type` names, bound to the config's hyperparameters."""
    if cfg.loss_type not in LOSSES:
        raise ConfigError(f"--loss_type: unknown loss_type {cfg.loss_type!r}; choose one of {', '.join(LOSSES)}")
    return replace(LOSSES[cfg.loss_type](cfg), nll_weight=cfg.rpo_alpha)


@dataclass
class LossConfig:
    """The preference loss and its hyperparameters: DPOConfig's loss fields (a new hyperparameter goes here)."""

    loss_type: str = config_field("sigmoid", help="sigmoid (DPO; with label_smoothing = cDPO), ipo, hinge (SLiC), robust, simpo (reference-free)")
    beta: float = config_field(0.1, help="strength of the KL tie to the reference (zephyr-7b-beta paper 0.1, handbook 0.01; IPO: its tau; SimPO: its beta, ~2)")
    label_smoothing: float = config_field(0.0, help="assumed rate of flipped preference labels (cDPO with sigmoid, robust DPO; < 0.5)")
    simpo_gamma: float = config_field(0.5, help="SimPO target reward margin gamma")
    rpo_alpha: float = config_field(0.0, help="weight of the chosen reply's per-token negative log-likelihood added to the loss (RPO, Pang et al. 2024: 1.0; 0 = off)")

    def __post_init__(self):
        make_loss(self)  # an unknown loss_type fails here
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ConfigError(f"--beta: must be a number > 0, got {self.beta}")
        if not 0 <= self.label_smoothing < 0.5:  # false for NaN too
            raise ConfigError(f"--label_smoothing: must be in [0, 0.5), got {self.label_smoothing}")
        if not (math.isfinite(self.simpo_gamma) and self.simpo_gamma >= 0):
            raise ConfigError(f"--simpo_gamma: must be a number >= 0, got {self.simpo_gamma}")
        if not (math.isfinite(self.rpo_alpha) and self.rpo_alpha >= 0):
            raise ConfigError(f"--rpo_alpha: must be a number >= 0, got {self.rpo_alpha}")
        rest = getattr(super(), "__post_init__", None)  # the next base's checks, in a stage config
        if rest is not None:
            rest()

    @property
    def loss(self) -> Loss:
        return make_loss(self)
