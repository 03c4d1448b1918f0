"""Padding-free packing: many tokenized conversations per row, each keeping its own position ids.

Rows are filled by best-fit decreasing (longest conversation first, into the fullest row it still fits), so
rows are nearly full and nothing is cut except a conversation longer than a row (truncated, and counted).
Position ids restart at 0 for every conversation: that is what tells the attention kernel where one
conversation ends (transformers' packed-sequence detection on CPU, the varlen flash kernel on GPU).

`collate_rows` builds one micro-batch:
  input_ids, position_ids  (B, L) "rows" layout (CPU sdpa/eager: attention is L^2 per row, not (B*L)^2),
                           or (1, B*L) "flat" layout (flash-attention varlen: no padding at all);
  target_index             flat positions whose hidden state predicts a target token (the token after it);
  target_ids, target_seq   the target tokens and which conversation of the batch each belongs to;
  segments                 the rows' attention pieces with every kernel's index tensors (zephyr/train/attention.py),
                           built here on the host so that the training step never reads positions back;
  n_targets, n_tokens, n_seqs.
A row shorter than the batch's longest is filled with pad tokens that form their own dummy sequence
(positions 0, 1, ...; a padding piece to the attention), so they attend to nothing real and carry no target.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Sequence

import torch

from .attention import Segments
from .segment_attention import Piece


@dataclasses.dataclass
class Tokenized:
    """A conversation as token ids plus a 0/1 mask of the tokens to predict (assistant replies + end of turn)."""

    ids: list[int]
    mask: list[int]

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass
class PackStats:
    conversations: int = 0
    truncated: int = 0       # longer than a row: cut at max_seq_length
    dropped_no_target: int = 0  # nothing to predict left (e.g. the reply was past the cut)
    rows: int = 0
    tokens: int = 0
    target_tokens: int = 0
    capacity: int = 0        # tokens per row

    @property
    def fill(self) -> float:
        """Fraction of row capacity holding real tokens (1.0 = no padding at all)."""
        return self.tokens / max(1, self.rows * self.capacity)


def truncate(examples: Sequence[Tokenized], max_len: int, stats: PackStats | None = None) -> list[Tokenized]:
    """Cut examples to max_len tokens; drop those left without a target token. Counts both in `stats`."""
    kept = []
    for ex in examples:
        if stats is not None:
            stats.conversations += 1
        if len(ex) > max_len:
            ex = Tokenized(ex.ids[:max_len], ex.mask[:max_len])
            if stats is not None:
                stats.truncated += 1
        if not any(ex.mask[1:]):
            if stats is not None:
                stats.dropped_no_target += 1
            continue
        kept.append(ex)
    return kept


def best_fit_decreasing(lengths: Sequence[int], capacity: int, oversized_alone: bool = False) -> list[list[int]]:
    """Group item indices into bins of total length <= capacity (best-fit decreasing, O(n log n)).

    Deterministic: ties are broken by index. An item longer than the capacity is an error, or with
    `oversized_alone` a bin of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, bin index)
    for i in order:
        size = lengths[i]
        if size > capacity:
            if not oversized_alone:
                raise ValueError(f"item {i} has length {size} > capacity {capacity}")
            bins.append([i])
            continue
        at = bisect.bisect_left(free, (size, -1))
        if at < len(free):
            remaining, b = free.pop(at)
        else:
            remaining, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if remaining - size > 0:
            bisect.insort(free, (remaining - size, b))
    return bins


def pack(examples: Sequence[Tokenized], max_seq_length: int, stats: PackStats | None = None) -> list[list[int]]:
    """Rows of example indices (each row's tokens fit in max_seq_length). Examples must already be truncated."""
    rows = best_fit_decreasing([len(e) for e in examples], max_seq_length)
    if stats is not None:
        stats.rows += len(rows)
        stats.tokens += sum(len(e) for e in examples)
        stats.target_tokens += sum(sum(e.mask[1:]) for e in examples)
        stats.capacity = max_seq_length
    return rows


def group_rows(rows: list[list[int]], rows_per_batch: int, seed: int) -> list[list[list[int]]]:
    """Shuffle rows (seeded) and cut them into micro-batches of `rows_per_batch` rows (last one may be short)."""
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    shuffled = [rows[i] for i in order]
    return [shuffled[i:i + rows_per_batch] for i in range(0, len(shuffled), rows_per_batch)]


def collate_rows(batch_rows: Sequence[Sequence[int]], examples: Sequence[Tokenized], pad_id: int,
                 flat: bool = False) -> dict:
    """One micro-batch of packed rows -> tensors (see the module docstring)."""
    lengths = [sum(len(examples[e]) for e in row) for row in batch_rows]
    width = sum(lengths) if flat else max(lengths)
    input_ids = torch.full((1 if flat else len(batch_rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros_like(input_ids)
    flat_ids, flat_pos = input_ids.view(-1), position_ids.view(-1)
    target_index: list[int] = []
    target_ids: list[int] = []
    target_seq: list[int] = []
    n_seqs, offset = 0, 0
    pieces: list[list[Piece]] = [[] for _ in range(input_ids.shape[0])]
    for b, row in enumerate(batch_rows):
        if not flat:
            offset = b * width
        row_start = 0 if flat else b * width
        for e in row:
            ex = examples[e]
            n = len(ex.ids)
            flat_ids[offset:offset + n] = torch.tensor(ex.ids)
            flat_pos[offset:offset + n] = torch.arange(n)
            pieces[0 if flat else b].append(Piece(offset - row_start, offset - row_start + n))
            for t in range(1, n):
                if ex.mask[t]:  # the hidden state at t-1 predicts token t
                    target_index.append(offset + t - 1)
                    target_ids.append(ex.ids[t])
                    target_seq.append(n_seqs)
            offset += n
            n_seqs += 1
        if not flat and lengths[b] < width:
            # padding is its own dummy sequence: positions restart at 0 so it never joins the last conversation
            flat_pos[offset:b * width + width] = torch.arange(width - lengths[b])
            pieces[b].append(Piece(lengths[b], width, pad=True))
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "target_index": torch.tensor(target_index, dtype=torch.long),
        "target_ids": torch.tensor(target_ids, dtype=torch.long),
        "target_seq": torch.tensor(target_seq, dtype=torch.long),
        "segments": Segments.build(pieces, width),
        "n_targets": len(target_ids),
        "n_tokens": sum(lengths),
        "n_seqs": n_seqs,
    }
