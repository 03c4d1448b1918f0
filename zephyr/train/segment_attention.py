"""Attention over packed rows, segment by segment, without a dense [L, L] mask.

A packed row holds several independent pieces of text. The dense-mask way to keep them blind to each other
(a block-diagonal [L, L] mask) makes the CPU's attention kernels compute, and differentiate, every masked-out
score of the whole row: for a 2,048-token row of 500-token sequences that is ~8x the work that counts, and
masks also keep PyTorch's CPU flash kernel from skipping the blocks above the diagonal. This module runs
`scaled_dot_product_attention` once per piece instead, on exactly the keys the piece may see — what
FlashAttention's varlen kernel does on a GPU, for any device.

A row is described by `Piece`s, in order, covering it:
  Piece(start, end)                       tokens start..end-1 attend causally to themselves (a sequence)
  Piece(start, end, keys_from, keys_to)   ...and, before those, to tokens keys_from..keys_to-1 (a shared prompt:
                                          DPO's rejected completion sees the prompt, not the chosen one)
  Piece(start, end, pad=True)             padding: output zeros, sees nothing
Positions inside a piece's key range run on from the prefix, so a sliding window (Gemma's local layers) is
applied as the model counts positions: key k is visible to query q when 0 <= q - k < window.

This is the CPU kernel of packed attention; zephyr/train/attention.py chooses it, or a GPU kernel, per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Piece:
    start: int
    end: int
    keys_from: int = 0   # a prefix the piece also sees (keys_to > keys_from), e.g. a shared prompt
    keys_to: int = 0
    pad: bool = False


def _visible(n_queries: int, n_keys: int, window: int | None, device) -> torch.Tensor | None:
    """Bool [q, k] mask for queries that are the last `n_queries` of `n_keys` consecutive positions, or None
    when plain causal attention (sdpa's is_causal) is exactly right."""
    if n_queries == n_keys and (window is None or n_keys <= window):
        return None
    q = torch.arange(n_keys - n_queries, n_keys, device=device)[:, None]
    k = torch.arange(n_keys, device=device)[None, :]
    mask = k <= q
    if window is not None:
        mask &= (q - k) < window
    return mask


def segment_attention(module, query, key, value, pieces: list[list[Piece]], dropout: float = 0.0, scaling=None,
                      sliding_window: int | None = None, softcap=None):
    """query [B, H, L, D], key/value [B, Hkv, L, D], `pieces` per row -> ([B, L, H, D], None)."""
    if softcap is not None:
        raise ValueError("segment attention does not support attention logit soft-capping")
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    rows = []
    for r, row in enumerate(pieces):
        # one split per row rather than a slice per piece: a slice's backward writes a zero-filled gradient of
        # the whole row for every piece (measured: a tenth of the step on a packed row of 16 pieces)
        sizes = [p.end - p.start for p in row]
        qs, ks, vs = (t[r:r + 1].split(sizes, dim=2) for t in (query, key, value))
        outs = []
        for i, p in enumerate(row):
            if p.pad:
                outs.append(torch.zeros_like(qs[i]))
                continue
            k, v = ks[i], vs[i]
            if p.keys_to > p.keys_from:
                j = next(j for j, o in enumerate(row) if o.start <= p.keys_from and p.keys_to <= o.end)
                a, b = p.keys_from - row[j].start, p.keys_to - row[j].start
                k, v = torch.cat([ks[j][:, :, a:b], k], dim=2), torch.cat([vs[j][:, :, a:b], v], dim=2)
            mask = _visible(sizes[i], k.shape[2], sliding_window, query.device)
            outs.append(F.scaled_dot_product_attention(
                qs[i], k, v, attn_mask=mask, is_causal=mask is None, scale=scaling,
                dropout_p=dropout if module.training else 0.0, enable_gqa=gqa))
        rows.append(torch.cat(outs, dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None
