"""Mixed precision as the Zephyr cards trained: fp32 master weights, bf16 (or fp16) compute.

The trainable weights and AdamW's state stay in fp32, and the forward and backward passes run in the compute
dtype through autocast (accelerate's `mixed_precision`), as the alignment-handbook's `torch_dtype: null` +
`bf16: true` and DeepSpeed ZeRO-3 do. An AdamW step changes a weight by about the learning rate; bf16 keeps 8
significant bits, so with bf16 weights any step smaller than ~1/256 of the weight is rounded away: at the cards'
DPO learning rate of 5e-7 almost no weight moves. Frozen weights (a LoRA base, a reference model) may stay in
the compute dtype: they never take a step.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from ..errors import ConfigError

MIXED_PRECISION = {torch.float32: "no", torch.bfloat16: "bf16"}


def master_weights(model: torch.nn.Module, compute: torch.dtype, low_precision_weights: bool = False) -> str:
    """Keep every trainable parameter of `model` in fp32 (in place) and return the trainer's `mixed_precision`
    for computing in `compute`. `low_precision_weights` keeps them in `compute` instead (half the memory of
    weights, gradients and optimizer state), with a warning saying what that does to small updates."""
    if compute == torch.float32:
        return "no"
    if compute == torch.float16 and not low_precision_weights:
        raise ConfigError("dtype float16: fp16 mixed precision needs loss scaling, which zephyr does not do; "
                          "train with bfloat16 (or float32) compute")
    if low_precision_weights:
        warnings.warn(f"low_precision_weights: trainable weights and AdamW state stay in {compute}, which rounds "
                      "away any update smaller than ~1/256 of a weight: at small learning rates (the cards' DPO "
                      "uses 5e-7) most weights never change. Leave it off to train fp32 master weights with "
                      f"{compute} compute.", stacklevel=2)
        return "no"
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    return MIXED_PRECISION[compute]


def autocast(device: torch.device | str, mixed_precision: str):
    """bf16 autocast on `device`'s type for "bf16"; a no-op for "no"."""
    if mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def precision_label(compute: torch.dtype, low_precision_weights: bool = False) -> str:
    """How a run computes, for cache keys: the compute dtype, and for bf16 whether over fp32 master weights."""
    if compute == torch.float32:
        return str(compute)
    return f"{compute} {'weights' if low_precision_weights else 'autocast over fp32 weights'}"
