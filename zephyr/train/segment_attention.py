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

Installed as the attention implementation "zephyr_segments": a call that passes `segments=` gets this path;
any other call (generation, evaluation) is handed to transformers' own sdpa unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

NAME = "zephyr_segments"


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


def segment_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                      sliding_window: int | None = None, softcap=None, segments=None, **kwargs):
    """transformers attention interface: query [B, H, L, D], key/value [B, Hkv, L, D] -> ([B, L, H, D], None)."""
    if segments is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      sliding_window=sliding_window, softcap=softcap, **kwargs)
    if softcap is not None:
        raise ValueError("segment attention does not support attention logit soft-capping")
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    rows = []
    for r, pieces in enumerate(segments):
        # one split per row rather than a slice per piece: a slice's backward writes a zero-filled gradient of
        # the whole row for every piece (measured: a tenth of the step on a packed row of 16 pieces)
        sizes = [p.end - p.start for p in pieces]
        qs, ks, vs = (t[r:r + 1].split(sizes, dim=2) for t in (query, key, value))
        outs = []
        for i, p in enumerate(pieces):
            if p.pad:
                outs.append(torch.zeros_like(qs[i]))
                continue
            k, v = ks[i], vs[i]
            if p.keys_to > p.keys_from:
                j = next(j for j, o in enumerate(pieces) if o.start <= p.keys_from and p.keys_to <= o.end)
                a, b = p.keys_from - pieces[j].start, p.keys_to - pieces[j].start
                k, v = torch.cat([ks[j][:, :, a:b], k], dim=2), torch.cat([vs[j][:, :, a:b], v], dim=2)
            mask = _visible(sizes[i], k.shape[2], sliding_window, query.device)
            outs.append(F.scaled_dot_product_attention(
                qs[i], k, v, attn_mask=mask, is_causal=mask is None, scale=scaling,
                dropout_p=dropout if module.training else 0.0, enable_gqa=gqa))
        rows.append(torch.cat(outs, dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def pieces_from_positions(position_ids: torch.Tensor) -> list[list[Piece]]:
    """Packed rows whose position ids restart at 0 for every sequence -> one causal piece per sequence."""
    rows = []
    for row in position_ids.tolist():
        starts = [0] + [i for i, p in enumerate(row) if p == 0 and i > 0]
        rows.append([Piece(a, b) for a, b in zip(starts, starts[1:] + [len(row)])])
    return rows


def forward_kwargs(model_config, pieces: list[list[Piece]], device) -> dict:
    """What the model's forward takes for segment attention: the pieces, and a 4-D placeholder mask (per layer
    type where the model has several) that tells transformers the mask is prepared, so it builds none."""
    config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    placeholder = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=device)
    kinds = set(getattr(config, "layer_types", None) or [])
    mask = {kind: placeholder for kind in kinds} if "sliding_attention" in kinds else placeholder
    return {"attention_mask": mask, "segments": pieces}


def install(model_config) -> bool:
    """Make `model_config` use segment attention where it uses sdpa; -> whether it now does. The name is
    registered with transformers' attention interface (calls without `segments=` behave as sdpa) and with
    its mask interface (those calls get sdpa's masks)."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if NAME not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(NAME, segment_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    if model_config._attn_implementation == NAME:
        return True
    if model_config._attn_implementation != "sdpa":
        return False
    model_config._attn_implementation = NAME
    return True
