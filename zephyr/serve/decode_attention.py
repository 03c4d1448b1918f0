"""Decode steps on a CPU without the padding tax: SDPA called the way its CPU kernel is fast, a KV cache that grows
in place.

A decode step of a small model on a CPU is bound by memory traffic, and in the batched decoder's layout (rows
right-aligned in one cache as wide as the longest row) most of the cache is padding. What stock transformers
does there costs more than the step's weights:
  * with no mask (one row, or rows of equal length) it hands a grouped-query decode step to SDPA as one query
    per head (`enable_gqa`), and torch's CPU flash-attention kernel pays for a whole block of queries per head:
    over 16 rows of 1,000 cached tokens (gemma-3-270m, bf16, 2 cores) ~16 ms, where the same kernel given the
    4 query heads of each KV head as 4 queries (what transformers does when there is a mask) takes ~1.2 ms;
  * it reads every row over the whole cache width: padding, and on a sliding-window layer what the window hides;
  * `DynamicLayer` appends a step's keys and values with `torch.cat`, rewriting the whole cache every step.
`attention` always packs one-token steps that way and reads consecutive rows of similar length in runs, each
from the earliest column its mask attends (`runs`); every other call (prefill, training) is transformers' SDPA
unchanged. `SlackLayer` writes a step's keys and values into free columns kept on the right of its buffers.
`use_decode_attention(model)` registers `attention` with transformers (`AttentionInterface`, with SDPA's masks)
and switches a model on SDPA to it. The batched decoder uses both for models on the CPU.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "zephyr_decode"  # an attention implementation name: SDPA, except for one-token steps
SLACK = 256  # free columns a layer's buffers get each time they are (re)allocated
RUN_COST = 1024  # an SDPA call's overhead, in (row, key column) pairs read
_last_runs = None  # (weak reference to a mask, its runs)


def attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers' attention-function signature: query [B, H, q, D], key and value [B, H_kv, kv, D], a mask
    [B, 1, q, kv] (boolean, True: attend; or a float one to add) or None; returns ([B, q, H, D], None) as
    transformers' SDPA does. A one-token step packs the query heads that share a KV head as that head's
    queries, and reads each run of rows only from its first attended column on (`runs`)."""
    if query.shape[2] != 1 or module.training or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    queries = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # [B, H_kv, heads per KV head, D]
    if attention_mask is None or attention_mask.dtype != torch.bool or attention_mask.shape[1] != 1:
        out = F.scaled_dot_product_attention(queries, key, value, attn_mask=attention_mask, scale=scaling)
        return out.reshape(batch, 1, heads, value.shape[-1]), None
    out = query.new_empty(batch, kv_heads, heads // kv_heads, value.shape[-1])
    for first, last, width in runs(attention_mask):
        rows = slice(first, last)
        out[rows] = F.scaled_dot_product_attention(queries[rows], key[rows, :, -width:], value[rows, :, -width:],
                                                   attn_mask=attention_mask[rows, ..., -width:], scale=scaling)
    return out.reshape(batch, 1, heads, value.shape[-1]), None


def runs(mask: torch.Tensor) -> list[tuple[int, int, int]]:
    """[(first row, end row, key columns)]: consecutive rows of a one-token step's boolean mask [B, 1, 1, kv],
    each run read from the earliest column any of its rows attends. Runs are chosen to read the fewest
    columns, counting each extra SDPA call as RUN_COST columns: rows right-aligned in a cache as wide as the
    longest (the batched decoder's layout, in order of prompt length when admitted together) or a sliding
    window's mask then skip the padding and what the window hides. The runs of the last mask are kept: the
    layers of one step share their masks."""
    global _last_runs
    last = _last_runs  # one read: another decoder's thread may replace it
    if last is not None and last[0]() is mask:
        return last[1]
    columns = mask.shape[-1]
    attended = mask[:, 0, 0]
    needed = (columns - attended.int().argmax(-1)).tolist()  # rows attending nothing: all columns, as SDPA
    # best[i]: (cost, runs) of rows [0, i); the last run of a split ends at i
    best: list[tuple[float, list]] = [(0.0, [])]
    for end in range(1, len(needed) + 1):
        choice, widest = None, 0
        for first in range(end - 1, -1, -1):
            widest = max(widest, needed[first])
            cost = best[first][0] + RUN_COST + (end - first) * widest
            if choice is None or cost < choice[0]:
                choice = (cost, best[first][1] + [(first, end, widest)])
        best.append(choice)
    result = best[-1][1]
    _last_runs = (weakref.ref(mask), result)
    return result


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
