"""Test-only oracles for packed attention: the visibility written out as a dense mask, position by position, and
varlen_attn's documented semantics on the CPU (its flash kernel is CUDA-only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zephyr.train.segment_attention import Piece


def dense_mask(rows: list[list[Piece]], length: int, window: int | None) -> torch.Tensor:
    """[rows, 1, L, L] bool: query q sees key k. A padding query sees itself (its output is discarded)."""
    mask = torch.zeros(len(rows), 1, length, length, dtype=torch.bool)
    for r, pieces in enumerate(rows):
        for p in pieces:
            if p.pad:
                for q in range(p.start, p.end):
                    mask[r, 0, q, q] = True
                continue
            keys = list(range(p.keys_from, p.keys_to)) + list(range(p.start, p.end))
            position = {k: i for i, k in enumerate(keys)}
            for q in range(p.start, p.end):
                for k in keys:
                    d = position[q] - position[k]
                    if d >= 0 and (window is None or d < window):
                        mask[r, 0, q, k] = True
    return mask


def real_tokens(rows: list[list[Piece]], length: int) -> torch.Tensor:
    real = torch.zeros(len(rows), length, dtype=torch.bool)
    for r, pieces in enumerate(rows):
        for p in pieces:
            real[r, p.start:p.end] = not p.pad
    return real


def dense_reference(q, k, v, rows, window, scale, softcap=None) -> torch.Tensor:
    """[B, H, L, D] inputs -> [B, L, H, D], by the dense mask (GQA by repeating the key/value heads)."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    mask = dense_mask(rows, q.shape[2], window)
    if softcap is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale).transpose(1, 2)
    scores = softcap * torch.tanh((q @ k.transpose(-1, -2)) * scale / softcap)
    return (scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v).transpose(1, 2)


class VarlenOracle:
    """Stands in for torch.nn.attention.varlen.varlen_attn: per sequence i, queries cu_q[i]..cu_q[i+1] over keys
    cu_k[i]..cu_k[i+1], the mask aligned bottom-right (the queries are the last of the keys) as flash-attention
    aligns causal and windowed masks; window_size (left, right) counts keys either side of the query. Records
    the types of its host arguments."""

    def __init__(self):
        self.calls = []

    def __call__(self, query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, window_size=(-1, -1),
                 enable_gqa=False, **unused):
        self.calls.append({"max_q": max_q, "max_k": max_k, "cu_dtype": cu_seq_q.dtype, "window_size": window_size})
        bounds_q, bounds_k = cu_seq_q.cpu().numpy().tolist(), cu_seq_k.cpu().numpy().tolist()
        assert len(bounds_q) == len(bounds_k)
        outs = []
        for i in range(len(bounds_q) - 1):
            a, b, c, d = bounds_q[i], bounds_q[i + 1], bounds_k[i], bounds_k[i + 1]
            assert b - a <= max_q and d - c <= max_k
            qi = torch.arange(d - c - (b - a), d - c)[:, None]
            ki = torch.arange(d - c)[None, :]
            left, right = window_size
            mask = torch.ones(b - a, d - c, dtype=torch.bool)
            if right >= 0:
                mask &= ki <= qi + right
            if left >= 0:
                mask &= ki >= qi - left
            outs.append(F.scaled_dot_product_attention(
                query[a:b].transpose(0, 1), key[c:d].transpose(0, 1), value[c:d].transpose(0, 1),
                attn_mask=mask, scale=scale, enable_gqa=enable_gqa).transpose(0, 1))
        return torch.cat(outs)
