"""Decode steps on a CPU without the padding tax: attention as two batched matmuls, a KV cache with room to grow.

A decode step of a small model on a CPU is bound by memory traffic, and in the batched decoder's layout (rows
right-aligned in one cache as wide as the longest row) most of the cache is padding. Two things stock
transformers does cost more than the step's weights:
  * transformers hands a grouped-query decode step to SDPA as one query per head (`enable_gqa`), and torch's
    CPU flash-attention kernel pays for a whole block of queries per head: over 16 rows of 1,000 cached tokens
    (gemma-3-270m, bf16, 2 cores) that takes ~16 ms where the same kernel given the 4 query heads of each KV
    head as 4 queries takes ~1.2 ms, for the same result. `attention` packs one-token steps that way
    and, on a sliding-window layer, reads only the window when the mask says nothing before it is attended;
    every other call (prefill, training) is transformers' SDPA unchanged.
  * `DynamicLayer` appends a step's keys and values with `torch.cat`, rewriting the whole cache every step.
    `SlackLayer` writes them into free columns kept on the right of its buffers.
`use_decode_attention(model)` registers `attention` with transformers (`AttentionInterface`, with SDPA's masks)
and switches a model on SDPA to it. The batched decoder uses both for models on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "zephyr_decode"  # an attention implementation name: SDPA, except for one-token steps
SLACK = 256  # free columns a layer's buffers get each time they are (re)allocated


def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, sliding_window=None, **kwargs):
    """transformers' attention-function signature: query [B, H, q, D], key and value [B, H_kv, kv, D], a mask
    [B, 1, q, kv] (boolean, True: attend; or a float one to add) or None; returns ([B, q, H, D], None) as
    transformers' SDPA does. A one-token step packs the query heads that share a KV head as that head's queries."""
    if query.shape[2] != 1 or module.training or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      sliding_window=sliding_window, **kwargs)
    if (sliding_window and attention_mask is not None and attention_mask.dtype == torch.bool
            and key.shape[2] > sliding_window and not attention_mask[..., :-sliding_window].any()):
        key, value = key[:, :, -sliding_window:], value[:, :, -sliding_window:]
        attention_mask = attention_mask[..., -sliding_window:]
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    queries = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # [B, H_kv, heads per KV head, D]
    out = F.scaled_dot_product_attention(queries, key, value, attn_mask=attention_mask, scale=scaling)
    return out.reshape(batch, 1, heads, value.shape[-1]), None


def use_decode_attention(model) -> bool:
    """Switch a model on SDPA to `attention`; False when it is on something else (eager, flash attention ...),
    which is then left alone."""
    if model.config._attn_implementation != "sdpa":
        return False
    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return model.config._attn_implementation == NAME


class SlackLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of buffers with free columns on the right: a step writes
    its columns into them, and a buffer is reallocated (the one copy `DynamicLayer` makes every step) only when
    it is full or when its owner replaced the tensors (the batched decoder does when rows join or leave)."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.key_room = self.value_room = None
        self.keys, self.key_room = _append(self.keys, self.key_room, key_states)
        self.values, self.value_room = _append(self.values, self.value_room, value_states)
        return self.keys, self.values


def _append(states: torch.Tensor, room: torch.Tensor | None, new: torch.Tensor):
    """(states followed by new, as a view of a buffer with free columns, that buffer)."""
    used = states.shape[-2] if states.numel() else 0
    end = used + new.shape[-2]
    fits = (room is not None and used and states.data_ptr() == room.data_ptr() and states.stride() == room.stride()
            and states.shape[:2] == room.shape[:2] and end <= room.shape[-2])
    if not fits:
        room = new.new_zeros(new.shape[:2] + (end + SLACK, new.shape[-1]))
        if used:
            room[:, :, :used] = states
    room[:, :, used:end] = new
    return room[:, :, :end], room
