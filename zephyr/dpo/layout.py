"""How a micro-batch of pairs is laid out for the forward pass, and which hidden states score which tokens.

Four layouts give the same numbers (tests/dpo/test_layouts.py checks it to 1e-4):
- "padded": TRL's: 2B rows, prompt+chosen then prompt+rejected, right-padded, ordinary causal attention.
- "packed": the 2B sequences packed end to end into few rows with no padding between them; a block-diagonal
  mask and restarting position ids keep each sequence blind to its neighbours (contamination-free).
- "shared": one segment per pair, [prompt | chosen | rejected]: the prompt is encoded once; under the mask the
  chosen tokens see the prompt and themselves, the rejected tokens the prompt and themselves (not the chosen),
  and the rejected positions restart right after the prompt, so each completion sees exactly what it would
  see alone.
- "rows" (experimental): for CPUs, where a kernel computes every masked-out score of a row: each pair is either one shared
  segment or two plain sequences, whichever costs less (a long prompt favours sharing, long completions do not:
  a shared segment's masked attention is (P+C+R)^2, the split ones' causal attention about half of
  (P+C)^2 + (P+R)^2), and every segment is run as its own unpadded forward (see logprobs.py). On the busy
  2-core test machine it measured slower than "padded" for the tiny Mistral (one forward per row), so it is
  not the default; it is kept, tested for exactness, for measurement on an idle machine.

Every layout yields the same scoring plan: for each completion token, the (row, index) of the hidden state that
predicts it, its label and which sequence it belongs to (pair j's chosen = j, its rejected = pairs + j).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .tokenize import TokenizedPair

LAYOUTS = ("padded", "packed", "shared", "rows")


@dataclass
class PairBatch:
    input_ids: torch.Tensor        # [rows, length]
    position_ids: torch.Tensor     # [rows, length]
    segment_ids: torch.Tensor      # [rows, length]: tokens attend only within a segment; -1 = padding
    branch_ids: torch.Tensor       # [rows, length]: 0 prompt (seen by all), k > 0 seen only by branch k
    target_row: torch.Tensor       # [targets] hidden state row ...
    target_index: torch.Tensor     # [targets] ... and index that predicts the token
    target_label: torch.Tensor     # [targets] the completion token
    target_seq: torch.Tensor       # [targets] 0..pairs-1 chosen, pairs..2*pairs-1 rejected
    chosen_tokens: torch.Tensor    # [pairs]
    rejected_tokens: torch.Tensor  # [pairs]
    pair_index: torch.Tensor       # [pairs] index in the split (precomputed reference lookup)
    layout: str
    row_lengths: torch.Tensor | None = None   # [rows] real tokens per row ("rows" layout: run one by one)
    row_shared: torch.Tensor | None = None    # [rows] True where the row is a shared segment (needs the mask)
    ref_chosen: torch.Tensor | None = None    # [pairs] precomputed reference log-probs, when cached
    ref_rejected: torch.Tensor | None = None

    @property
    def pairs(self) -> int:
        return len(self.pair_index)

    @property
    def real_tokens(self) -> int:
        return int((self.segment_ids >= 0).sum())

    def to(self, device) -> "PairBatch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return PairBatch(**moved)


class _Rows:
    """Accumulates tokens row by row, with the scoring plan."""

    def __init__(self):
        self.ids, self.pos, self.seg, self.branch = [], [], [], []
        self.t_row, self.t_index, self.t_label, self.t_seq = [], [], [], []

    def new_row(self):
        for lst in (self.ids, self.pos, self.seg, self.branch):
            lst.append([])
        return len(self.ids) - 1

    def add(self, row: int, tokens: list[int], start_pos: int, segment: int, branch: int) -> int:
        """Append tokens to `row`; return the index of the first."""
        first = len(self.ids[row])
        self.ids[row] += tokens
        self.pos[row] += range(start_pos, start_pos + len(tokens))
        self.seg[row] += [segment] * len(tokens)
        self.branch[row] += [branch] * len(tokens)
        return first

    def score(self, row: int, predictor: int, completion_first: int, tokens: list[int], seq: int):
        """Token i of a completion is predicted by the hidden state before it: the prompt's last for i = 0."""
        for i, label in enumerate(tokens):
            self.t_row.append(row)
            self.t_index.append(predictor if i == 0 else completion_first + i - 1)
            self.t_label.append(label)
            self.t_seq.append(seq)

    def tensors(self, pad_id: int):
        length = max(len(r) for r in self.ids)
        def padded(rows, value):  # noqa: E306
            return torch.tensor([r + [value] * (length - len(r)) for r in rows], dtype=torch.long)
        return (padded(self.ids, pad_id), padded(self.pos, 0), padded(self.seg, -1), padded(self.branch, 0),
                *(torch.tensor(x, dtype=torch.long) for x in (self.t_row, self.t_index, self.t_label, self.t_seq)))


def _bins(sizes: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: item indices grouped into rows of at most `capacity` tokens (an item larger than
    the capacity gets a row of its own)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        for r, free in enumerate(room):
            if sizes[i] <= free:
                rows[r].append(i)
                room[r] -= sizes[i]
                break
        else:
            rows.append([i])
            room.append(capacity - sizes[i])
    return rows


def attention_cost(config) -> float:
    """Attention FLOPs per (query, key) pair over the other FLOPs per token, per layer, from a model config;
    doubled because attention kernels (softmax, masking) run at a fraction of the matmuls' speed (assumed)."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden, heads = config.hidden_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    per_layer = 2 * hidden * heads * head_dim + 2 * hidden * kv * head_dim + 3 * hidden * config.intermediate_size
    return 2 * (4 * heads * head_dim) / (2 * per_layer)


def share_prompt(p: TokenizedPair, attention_cost: float) -> bool:
    """Cost model of the "rows" layout: token cost 1, attention cost `attention_cost` per (query, key) pair
    computed; masked attention computes the full square, causal attention about half of it."""
    shared_len = len(p.prompt) + len(p.chosen) + len(p.rejected)
    shared = shared_len + attention_cost * shared_len ** 2
    a, b = len(p.prompt) + len(p.chosen), len(p.prompt) + len(p.rejected)
    split = a + b + attention_cost * (a * a + b * b) / 2
    return shared <= split


def collate(pairs: list[TokenizedPair], layout: str = "shared", pad_id: int = 0,
            row_tokens: int | None = None, attention_cost: float = 1e-3) -> PairBatch:
    """Lay out a micro-batch of pairs. `row_tokens` caps a packed row (default: one row for everything);
    `attention_cost` (attention FLOPs per query-key pair / other FLOPs per token) steers the "rows" layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    n = len(pairs)
    rows = _Rows()
    if layout == "padded":
        for side in ("chosen", "rejected"):
            for j, p in enumerate(pairs):
                completion = getattr(p, side)
                r = rows.new_row()
                rows.add(r, p.prompt, 0, r, 0)
                first = rows.add(r, completion, len(p.prompt), r, 1)
                rows.score(r, first - 1, first, completion, j if side == "chosen" else n + j)
    elif layout == "packed":
        seqs = [(j, p.prompt, p.chosen) for j, p in enumerate(pairs)] + \
               [(n + j, p.prompt, p.rejected) for j, p in enumerate(pairs)]
        sizes = [len(a) + len(b) for _, a, b in seqs]
        for group in _bins(sizes, row_tokens or sum(sizes)):
            r = rows.new_row()
            for i in sorted(group):
                seq, prompt, completion = seqs[i]
                rows.add(r, prompt, 0, seq, 0)
                first = rows.add(r, completion, len(prompt), seq, 1)
                rows.score(r, first - 1, first, completion, seq)
    elif layout == "rows":
        shared_rows = []
        split = [j for j, p in enumerate(pairs) if not share_prompt(p, attention_cost)]
        for j, p in enumerate(pairs):
            if j in split:
                continue
            r = rows.new_row()
            shared_rows.append(True)
            rows.add(r, p.prompt, 0, j, 0)
            last_prompt = len(p.prompt) - 1
            first = rows.add(r, p.chosen, len(p.prompt), j, 1)
            rows.score(r, last_prompt, first, p.chosen, j)
            first = rows.add(r, p.rejected, len(p.prompt), j, 2)
            rows.score(r, last_prompt, first, p.rejected, n + j)
        for side in ("chosen", "rejected"):
            for j in split:
                p = pairs[j]
                completion = getattr(p, side)
                r = rows.new_row()
                shared_rows.append(False)
                rows.add(r, p.prompt, 0, r, 0)
                first = rows.add(r, completion, len(p.prompt), r, 1)
                rows.score(r, first - 1, first, completion, j if side == "chosen" else n + j)
    else:
        sizes = [len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs]
        for group in _bins(sizes, row_tokens or sum(sizes)):
            r = rows.new_row()
            for j in sorted(group):
                p = pairs[j]
                prompt_first = rows.add(r, p.prompt, 0, j, 0)
                last_prompt = prompt_first + len(p.prompt) - 1
                first = rows.add(r, p.chosen, len(p.prompt), j, 1)
                rows.score(r, last_prompt, first, p.chosen, j)
                first = rows.add(r, p.rejected, len(p.prompt), j, 2)  # positions restart after the prompt
                rows.score(r, last_prompt, first, p.rejected, n + j)
    ids, pos, seg, branch, t_row, t_index, t_label, t_seq = rows.tensors(pad_id)
    batch = PairBatch(ids, pos, seg, branch, t_row, t_index, t_label, t_seq,
                      chosen_tokens=torch.tensor([len(p.chosen) for p in pairs]),
                      rejected_tokens=torch.tensor([len(p.rejected) for p in pairs]),
                      pair_index=torch.tensor([p.index for p in pairs]), layout=layout)
    if layout == "rows":
        batch.row_lengths = torch.tensor([len(r) for r in rows.ids])
        batch.row_shared = torch.tensor(shared_rows, dtype=torch.bool)
    return batch


def allowed(batch: PairBatch, sliding_window: int | None = None) -> torch.Tensor:
    """Boolean [rows, 1, L, L]: query q may attend key k. Same segment, k not after q, k in the prompt or in
    q's own branch, and (for sliding layers) within the window counted in positions, as the model counts them.
    A padding token sees only itself, so no attention row is empty (softmax over nothing is NaN)."""
    seg, branch, pos = batch.segment_ids, batch.branch_ids, batch.position_ids
    length = seg.shape[1]
    idx = torch.arange(length, device=seg.device)
    causal = idx[None, :, None] >= idx[None, None, :]
    same = (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] >= 0)
    visible = (branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :])
    mask = causal & same & visible
    if sliding_window is not None:
        mask &= (pos[:, :, None] - pos[:, None, :]) < sliding_window
    mask |= torch.eye(length, dtype=torch.bool, device=seg.device)[None]
    return mask[:, None]
