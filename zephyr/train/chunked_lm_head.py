"""Log-probabilities of target tokens from final hidden states, without full-vocabulary logits for every position.

A causal LM's loss only needs, for each *target* position, log p(target) = z[target] - logsumexp(z) with
z = lm_head(h). Computing z for all positions at once costs positions x vocab floats (Gemma's 262k vocab:
1 GB per 1k tokens in fp32), so here z exists for one chunk of `chunk_size` target positions at a time (the
scorer, zephyr/train/scoring.py, sizes the chunk from its logit budget):

- `token_logps(hidden, weight, targets, chunk_size)` (fused): a custom autograd function that, chunk by chunk,
  computes the log-probs *and* d logp / d hidden = W[target] - softmax(z) @ W in the forward pass, so the
  backward is one multiply. When the head weight trains (full fine-tuning) the backward recomputes each chunk's
  softmax once for d W. Memory: one chunk of logits; compute: no wasted forward (unlike activation checkpointing).
- `token_logps_checkpointed(hidden, lm_head, targets, chunk_size)`: the same numbers through ordinary module calls
  with torch.utils.checkpoint per chunk, for sharded setups (FSDP, ZeRO-3) whose parameter-gathering hooks fire
  only on module calls, and for a LoRA on the head.

Both also return the mean logit per position (over the vocabulary), a metric DPO logs.

On the CPU the fused path keeps its chunk-sized logits scratch (fp32, plus a bf16 one for a bf16 head: 768 MB
with Gemma's vocabulary) between calls: a fresh tensor that large is a fresh mmap whose every page the kernel
faults in and zeroes (benchmarks/README.md: 11% of a demo SFT step on a freshly loaded model, a third of the
demo's SFT stage end to end). CUDA's caching allocator already reuses its blocks. One training process calls the
head from one thread, so the scratch is not locked.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


_SCRATCH: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _scratch(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A flat tensor of `numel` elements to compute in; on the CPU the same memory every call (see above)."""
    if device.type != "cpu":
        return torch.empty(numel, dtype=dtype, device=device)
    key = (dtype, device)
    if key not in _SCRATCH or _SCRATCH[key].numel() < numel:
        _SCRATCH.pop(key, None)  # free the smaller one before the larger is allocated
        _SCRATCH[key] = torch.empty(numel, dtype=dtype, device=device)
    return _SCRATCH[key][:numel]


def _capped(z: torch.Tensor, softcap: float | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gemma-2-style final logit soft-capping c * tanh(z / c); also returns tanh for the derivative."""
    if not softcap:
        return z, None
    t = torch.tanh(z / softcap)
    return t * softcap, t


def _chunk_logits(h, weight, softcap):
    """One chunk's logits, vocabulary-major: z^T = W h^T as [V, n] fp32 in the scratch (on CPU faster than
    h W^T, and the reductions run over the leading dimension, vectorised across the chunk's tokens); also tanh
    for a soft-cap."""
    shape = (weight.shape[0], h.shape[0])
    z = _scratch(shape[0] * shape[1], torch.float32, h.device).view(shape)
    if weight.dtype == torch.float32:
        torch.mm(weight, h.t(), out=z)
    else:
        z.copy_(torch.mm(weight, h.t(), out=_scratch(z.numel(), weight.dtype, h.device).view(shape)))
    return _capped(z, softcap)


def _chunk_probs(h, weight, targets, softcap):
    """-> (z[target], mean z, lse, softmax(z) written over the logits in place, tanh)."""
    z, t = _chunk_logits(h, weight, softcap)
    picked, mean = z[targets, torch.arange(h.shape[0], device=h.device)], z.mean(0)
    top = z.amax(0, keepdim=True)
    total = z.sub_(top).exp_().sum(0, keepdim=True)
    lse = (top + total.log()).squeeze(0)
    return picked, mean, lse, z.div_(total), t


def _logp_grad(probs, targets, t):
    """d logp(target) / d z = onehot(target) - softmax(z), times the soft-cap derivative; in place, [V, n]."""
    g = probs.neg_()
    g[targets, torch.arange(g.shape[1], device=g.device)] += 1
    if t is not None:
        g.mul_(1 - t * t)
    return g


class _FusedLinearLogProb(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size, softcap):
        n = hidden.shape[0]
        logps = hidden.new_empty(n, dtype=torch.float32)
        means = hidden.new_empty(n, dtype=torch.float32)
        lses = hidden.new_empty(n, dtype=torch.float32)
        need_dh, need_dw = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dhidden = torch.empty_like(hidden) if need_dh else None
        for start in range(0, n, chunk_size):
            h, y = hidden[start:start + chunk_size], targets[start:start + chunk_size]
            picked, mean, lse, probs, t = _chunk_probs(h, weight, y, softcap)
            logps[start:start + chunk_size], means[start:start + chunk_size] = picked - lse, mean
            lses[start:start + chunk_size] = lse
            if need_dh:
                g = _logp_grad(probs, y, t)
                if weight.dtype != g.dtype:  # the head's dtype, in the scratch the logits were computed in
                    g = _scratch(g.numel(), weight.dtype, g.device).view(g.shape).copy_(g)
                dhidden[start:start + chunk_size] = (g.t() @ weight).to(hidden.dtype)
        ctx.chunk_size, ctx.softcap = chunk_size, softcap
        ctx.save_for_backward(dhidden if need_dh else None, hidden if need_dw else None,
                              weight if need_dw else None, targets, lses)
        ctx.mark_non_differentiable(means)
        return logps, means

    @staticmethod
    def backward(ctx, grad_logps, grad_means):
        dhidden, hidden, weight, targets, lses = ctx.saved_tensors
        grad_hidden = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_hidden = dhidden * grad_logps[:, None].to(dhidden.dtype)
        if ctx.needs_input_grad[1]:  # recompute each chunk's softmax once: dW = sum_n g_n (onehot - p_n) h_n^T
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            step = ctx.chunk_size
            for start in range(0, hidden.shape[0], step):
                h, y = hidden[start:start + step], targets[start:start + step]
                z, t = _chunk_logits(h, weight, ctx.softcap)  # softmax from the forward's lse
                probs = z.sub_(lses[None, start:start + step]).exp_()
                g = _logp_grad(probs, y, t).mul_(grad_logps[start:start + step][None, :].float())
                grad_weight.addmm_(g, h.float())
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None


def token_logps(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int,
                softcap: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H) hidden states, (V, H) head weight, (N,) target ids -> (log p(target) (N,), mean logit (N,)), fp32;
    `chunk_size` target positions at a time."""
    if hidden.shape[0] == 0:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty + hidden.sum() * 0, empty  # keeps the graph connected for DDP on an empty micro-batch
    return _FusedLinearLogProb.apply(hidden, weight, targets, chunk_size, softcap)


def token_logps_checkpointed(hidden: torch.Tensor, lm_head: torch.nn.Module, targets: torch.Tensor,
                             chunk_size: int, softcap: float | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Same as `token_logps` through `lm_head(...)` module calls, each chunk under activation checkpointing."""

    def one_chunk(h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = _capped(lm_head(h).float(), softcap)
        return logits.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(logits, -1), logits.mean(-1).detach()

    pieces = []
    for start in range(0, max(hidden.shape[0], 1), chunk_size):
        h, y = hidden[start:start + chunk_size], targets[start:start + chunk_size]
        if torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(one_chunk, h, y, use_reentrant=False))
        else:
            pieces.append(one_chunk(h, y))
    return torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])

