"""Attention over packed rows: which kernel runs it, and how the model is wired to it.

A micro-batch's rows are described by `Piece`s (zephyr/train/segment_attention.py): causal sequences, shared-
prompt branches that also see a prefix (DPO's rejected completion sees the prompt, not the chosen one), and
padding. `Segments.build(pieces, width)` turns that description, once per micro-batch on the host (at collate
time), into everything every kernel needs, so that the forward pass never reads a device value back:

  cu_q, cu_k, max_q, max_k, key_index   varlen (flash) attention: each piece's queries over the flattened rows,
                                        its keys (prefix, then its own tokens) gathered by `key_index`
  piece_of, piece_start, prefix_from,   FlexAttention's block mask, token by token
  prefix_to

The kernel, chosen per call (`kernel="auto"`):
  CPU                                  segment attention: one sdpa per piece (zephyr/train/segment_attention.py)
  CUDA, bf16/fp16, no logit soft-cap   `torch.nn.attention.varlen.varlen_attn` (PyTorch's flash kernel), causal
                                       aligned bottom-right, so a piece's queries are the last of its keys
  CUDA otherwise (fp32, soft-cap)      FlexAttention (compiled) with a block mask built once per window size
A sliding window (Gemma's local layers) counts positions as the model does: key k is visible to query q when
0 <= q - k < window, counting through the prefix.

Installed as the attention implementation "zephyr_segments": a call that passes `segments=` gets this path; any
other call (generation, evaluation) is handed to transformers' own sdpa unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass, field

import torch

from .segment_attention import Piece, segment_attention

NAME = "zephyr_segments"
KERNELS = ("auto", "segments", "varlen", "flex")


@dataclass
class Segments:
    pieces: list[list[Piece]]          # per row, covering it in order
    width: int                         # tokens per row
    cu_q: torch.Tensor                 # int32 [pieces + 1]: query boundaries over the flattened rows
    cu_k: torch.Tensor                 # int32 [pieces + 1]: key boundaries over the gathered keys
    max_q: int
    max_k: int
    key_index: torch.Tensor | None     # [keys] flat token of each gathered key; None: keys are the queries
    piece_of: torch.Tensor             # int32 [rows, width]: the token's piece (numbered over the batch), -1 padding
    piece_start: torch.Tensor          # int32 [rows, width]: where the token's piece starts in its row
    prefix_from: torch.Tensor          # int32 [rows, width]: the prefix the token's piece also sees (empty: 0, 0)
    prefix_to: torch.Tensor
    kernel: str = "auto"
    block_masks: dict = field(default_factory=dict)  # FlexAttention's, per window, built on first use

    @classmethod
    def build(cls, pieces: list[list[Piece]], width: int, kernel: str = "auto") -> "Segments":
        if kernel not in KERNELS:
            raise ValueError(f"unknown attention kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
        flat = [(r, p) for r, row in enumerate(pieces) for p in row]
        for r, row in enumerate(pieces):
            ends = [0] + [p.end for p in row]
            if [p.start for p in row] != ends[:-1] or ends[-1] != width:
                raise ValueError(f"row {r}: pieces must cover 0..{width} in order, got {row}")
        sizes = torch.tensor([p.end - p.start for _, p in flat], dtype=torch.int64)
        prefix = torch.tensor([(p.keys_to - p.keys_from) if p.keys_to > p.keys_from else 0 for _, p in flat],
                              dtype=torch.int64)
        cu_q = torch.zeros(len(flat) + 1, dtype=torch.int32)
        cu_q[1:] = sizes.cumsum(0)
        cu_k = torch.zeros(len(flat) + 1, dtype=torch.int32)
        cu_k[1:] = (sizes + prefix).cumsum(0)
        key_index = None
        if int(prefix.sum()) > 0:
            key_index = torch.cat([torch.cat([torch.arange(r * width + p.keys_from, r * width + p.keys_to)
                                              if p.keys_to > p.keys_from else torch.empty(0, dtype=torch.int64),
                                              torch.arange(r * width + p.start, r * width + p.end)])
                                   for r, p in flat])

        def per_token(values: list[int]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.int32).repeat_interleave(sizes).view(len(pieces), width)

        return cls(pieces, width, cu_q, cu_k, int(sizes.max()), int((sizes + prefix).max()), key_index,
                   per_token([-1 if p.pad else i for i, (_, p) in enumerate(flat)]),
                   per_token([p.start for _, p in flat]),
                   per_token([p.keys_from if p.keys_to > p.keys_from else 0 for _, p in flat]),
                   per_token([p.keys_to if p.keys_to > p.keys_from else 0 for _, p in flat]), kernel)

    def to(self, device) -> "Segments":
        """The same segments with their tensors on `device` (one asynchronous copy each; no host sync)."""
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in moved.items():
            if isinstance(value, torch.Tensor):
                moved[name] = value.to(device, non_blocking=True)
        moved["block_masks"] = {}
        return Segments(**moved)


def pieces_from_positions(position_ids: torch.Tensor) -> list[list[Piece]]:
    """Packed rows whose position ids restart at 0 for every sequence -> one causal piece per sequence. Reads the
    ids back to the host: for callers without collate-time segments (evaluation), not the training step."""
    rows = []
    for row in position_ids.tolist():
        starts = [0] + [i for i, p in enumerate(row) if p == 0 and i > 0]
        rows.append([Piece(a, b) for a, b in zip(starts, starts[1:] + [len(row)])])
    return rows


@functools.cache
def varlen_available() -> bool:
    """Whether this PyTorch has varlen_attn with sliding windows and grouped-query attention (2.13 has both)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return False
    return {"window_size", "enable_gqa"} <= set(inspect.signature(varlen_attn).parameters)


def kernel_for(query: torch.Tensor, softcap, requested: str = "auto") -> str:
    """The kernel a call runs: `requested`, or for "auto" the fastest that computes this call exactly."""
    if requested != "auto":
        return requested
    if query.device.type != "cuda":
        return "segments"
    if (softcap is None and query.dtype in (torch.bfloat16, torch.float16) and query.shape[-1] <= 256
            and varlen_available()):
        return "varlen"
    return "flex"


def _varlen(query, key, value, seg: Segments, scaling, window) -> torch.Tensor:
    from torch.nn.attention.varlen import varlen_attn

    rows, heads, length, dim = query.shape
    q = query.transpose(1, 2).reshape(rows * length, heads, dim)
    k = key.transpose(1, 2).reshape(rows * length, key.shape[1], dim)
    v = value.transpose(1, 2).reshape(rows * length, key.shape[1], dim)
    if seg.key_index is not None:  # each piece's keys: its prefix, then its own tokens
        k, v = k.index_select(0, seg.key_index), v.index_select(0, seg.key_index)
    # flash's window (left, right) counts keys either side of the query, the query included in neither
    window_size = (-1, 0) if window is None or window >= seg.max_k else (window - 1, 0)
    out = varlen_attn(q, k, v, seg.cu_q, seg.cu_k, seg.max_q, seg.max_k, scale=scaling, window_size=window_size,
                      enable_gqa=key.shape[1] != heads)
    return out.view(rows, length, heads, dim)


@torch.compiler.disable
def block_mask(seg: Segments, window: int | None, device):
    """FlexAttention's block mask for `seg` under `window`, built once per window and kept on `seg`."""
    if window not in seg.block_masks:
        from torch.nn.attention.flex_attention import create_block_mask

        piece_of, start, lo, hi = seg.piece_of, seg.piece_start, seg.prefix_from, seg.prefix_to

        def visible(b, h, q, k):
            own = (piece_of[b, q] >= 0) & (piece_of[b, k] == piece_of[b, q]) & (k <= q)
            prefix = (k >= lo[b, q]) & (k < hi[b, q])
            if window is None:
                return own | prefix
            # distance in the piece's key order: through the rest of the prefix, then into the piece
            return (own & (q - k < window)) | (prefix & ((q - start[b, q]) + (hi[b, q] - k) < window))

        seg.block_masks[window] = create_block_mask(visible, len(seg.pieces), None, seg.width, seg.width,
                                                    device=device, _compile=device.type == "cuda")
    return seg.block_masks[window]


_compiled_flex = None


def _flex(query, key, value, seg: Segments, scaling, window, softcap) -> torch.Tensor:
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if query.device.type == "cuda":  # uncompiled, flex materialises the whole score matrix
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention)
        run = _compiled_flex
    else:  # forward only on the CPU (tests); training there takes the segment path
        run = flex_attention
    heads = query.shape[1]
    if heads & (heads - 1):  # flex's grouped-query path wants a power-of-two head count
        key = key.repeat_interleave(heads // key.shape[1], dim=1)
        value = value.repeat_interleave(heads // value.shape[1], dim=1)

    def capped(score, b, h, q, k):
        return softcap * torch.tanh(score / softcap)

    out = run(query, key, value, score_mod=capped if softcap else None,
              block_mask=block_mask(seg, window, query.device), scale=scaling,
              enable_gqa=key.shape[1] != heads)
    return out.transpose(1, 2).contiguous()


@torch.compiler.disable  # a graph break: compiled decoder layers (TrainConfig.compile) never trace the pieces
def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                     sliding_window: int | None = None, softcap=None, segments: Segments | None = None, **kwargs):
    """transformers attention interface: query [B, H, L, D], key/value [B, Hkv, L, D] -> ([B, L, H, D], None)."""
    if segments is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      sliding_window=sliding_window, softcap=softcap, **kwargs)
    kernel = kernel_for(query, softcap, segments.kernel)
    if kernel == "segments":
        return segment_attention(module, query, key, value, dropout=dropout, scaling=scaling,
                                 sliding_window=sliding_window, softcap=softcap, pieces=segments.pieces)
    if dropout and module.training:
        raise ValueError(f"the {kernel} attention path has no attention dropout; set attention_dropout to 0")
    if kernel == "varlen":
        return _varlen(query, key, value, segments, scaling, sliding_window), None
    return _flex(query, key, value, segments, scaling, sliding_window, softcap), None


def forward_kwargs(model_config, segments: Segments, device) -> dict:
    """What the model's forward takes for packed attention: the segments on `device`, and a 4-D placeholder mask
    (per layer type where the model has several) that tells transformers the mask is prepared, so it builds none."""
    config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    placeholder = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=device)
    kinds = set(getattr(config, "layer_types", None) or [])
    mask = {kind: placeholder for kind in kinds} if "sliding_attention" in kinds else placeholder
    return {"attention_mask": mask, "segments": segments.to(device)}


def install(model_config) -> bool:
    """Make `model_config` use packed attention where it uses sdpa; -> whether it now does. The name is
    registered with transformers' attention interface (calls without `segments=` behave as sdpa) and with its
    mask interface (those calls get sdpa's masks)."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if NAME not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(NAME, packed_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    if model_config._attn_implementation == NAME:
        return True
    if model_config._attn_implementation != "sdpa":
        return False
    model_config._attn_implementation = NAME
    return True
