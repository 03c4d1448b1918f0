"""How a micro-batch of pairs is laid out for the forward pass, and which hidden states score which tokens.

Three layouts give the same numbers (tests/dpo/test_layouts.py checks it to 1e-4):
- "padded": TRL's: 2B rows, prompt+chosen then prompt+rejected, right-padded, ordinary causal attention.
- "packed": the 2B sequences packed end to end into few rows with no padding between them; a block-diagonal
  mask and restarting position ids keep each sequence blind to its neighbours (contamination-free).
- "shared": one segment per pair, [prompt | chosen | rejected]: the prompt is encoded once; under the mask the
  chosen tokens see the prompt and themselves, the rejected tokens the prompt and themselves (not the chosen),
  and the rejected positions restart right after the prompt, so each completion sees exactly what it would
  see alone.
With sdpa, the packed layouts run attention piece by piece: each sequence, or each shared prompt with its chosen
completion, causally on its own keys, and each rejected completion on the prompt's keys and its own, so no
masked-out score is ever computed; `pieces` describes each row, and `segments` (built at collate time) holds
them with the index tensors of every kernel: per-piece sdpa on CPU, varlen flash or FlexAttention on CUDA
(zephyr/train/attention.py). Eager attention gets the equivalent dense mask from `allowed()`.

Every layout yields the same scoring plan: for each completion token, the (row, index) of the hidden state that
predicts it, its label and which sequence it belongs to (pair j's chosen = j, its rejected = pairs + j).
Packed rows are filled by the SFT packer's best-fit decreasing (zephyr/train/packing.py). `PairBatch.scorer_inputs`
turns a batch into the shared scorer's arguments (zephyr/train/scoring.py); `completion_logps` runs the scorer
and sums the token log-probs of each completion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..train import attention as packed
from ..train.packing import best_fit_decreasing
from ..train.scoring import scorer_of, unwrap
from ..train.segment_attention import Piece
from .tokenize import TokenizedPair

LAYOUTS = ("padded", "packed", "shared")


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
    pieces: list[list[Piece]] | None = None   # per row, for packed attention
    segments: packed.Segments | None = None   # the pieces with every kernel's index tensors (collate time)
    ref_chosen: torch.Tensor | None = None    # [pairs] precomputed reference log-probs, when cached
    ref_rejected: torch.Tensor | None = None

    @property
    def pairs(self) -> int:
        return len(self.pair_index)

    @property
    def real_tokens(self) -> int:
        return int((self.segment_ids >= 0).sum())

    def to(self, device) -> "PairBatch":
        # asynchronous copies: a blocking host-to-device copy waits for the whole queue of GPU work
        moved = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor)
                     else v.to(device) if isinstance(v, packed.Segments) else v) for k, v in self.__dict__.items()}
        return PairBatch(**moved)

    def attention_kwargs(self, lm) -> dict:
        """The mask this layout needs, in the form the causal LM `lm`'s attention kernel takes."""
        config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
        if self.layout == "padded":
            return {"attention_mask": (self.segment_ids >= 0).long()}
        impl = getattr(lm.config, "_attn_implementation", "sdpa")
        if impl == packed.NAME:
            segments = self.segments
            if segments is None or segments.pieces is not self.pieces:  # pieces set by hand after collate
                segments = packed.Segments.build(self.pieces, self.input_ids.shape[1])
            return packed.forward_kwargs(lm.config, segments, self.input_ids.device)
        if impl not in ("sdpa", "eager"):
            raise ValueError(f"the {self.layout!r} layout needs attn_implementation sdpa or eager (got {impl!r}); "
                             "use layout: padded with other kernels")
        dtype = next(lm.parameters()).dtype

        def form(mask: torch.Tensor) -> torch.Tensor:
            if impl == "sdpa":
                return mask
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)

        window = getattr(config, "sliding_window", None)
        layer_types = getattr(config, "layer_types", None) or []
        if "sliding_attention" in layer_types:  # Gemma 2/3 style: a mask per layer type
            return {"attention_mask": {"full_attention": form(allowed(self)),
                                       "sliding_attention": form(allowed(self, window))}}
        return {"attention_mask": form(allowed(self, window))}

    def scorer_inputs(self, lm) -> dict:
        """The TokenScorer's arguments for this batch on the causal LM `lm` (zephyr/train/scoring.py)."""
        return {"input_ids": self.input_ids, "position_ids": self.position_ids,
                "target_index": self.target_row * self.input_ids.shape[1] + self.target_index,
                "target_ids": self.target_label, "attention": self.attention_kwargs(lm)}


class _Rows:
    """Accumulates tokens row by row, with the scoring plan."""

    def __init__(self):
        self.ids, self.pos, self.seg, self.branch = [], [], [], []
        self.t_row, self.t_index, self.t_label, self.t_seq = [], [], [], []
        self.pieces: list[list[Piece]] = []

    def new_row(self):
        for lst in (self.ids, self.pos, self.seg, self.branch, self.pieces):
            lst.append([])
        return len(self.ids) - 1

    def piece(self, row: int, start: int, keys_from: int = 0, keys_to: int = 0):
        """Tokens from `start` to the row's end form one attention piece (seeing keys_from..keys_to-1 first)."""
        self.pieces[row].append(Piece(start, len(self.ids[row]), keys_from, keys_to))

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
        for row, pieces in zip(self.ids, self.pieces):
            if len(row) < length:
                pieces.append(Piece(len(row), length, pad=True))
        def padded(rows, value):  # noqa: E306
            return torch.tensor([r + [value] * (length - len(r)) for r in rows], dtype=torch.long)
        return (padded(self.ids, pad_id), padded(self.pos, 0), padded(self.seg, -1), padded(self.branch, 0),
                *(torch.tensor(x, dtype=torch.long) for x in (self.t_row, self.t_index, self.t_label, self.t_seq)))


def collate(pairs: list[TokenizedPair], layout: str = "shared", pad_id: int = 0,
            row_tokens: int | None = None) -> PairBatch:
    """Lay out a micro-batch of pairs. `row_tokens` caps a packed row (default: one row for everything)."""
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
                rows.piece(r, 0)
                rows.score(r, first - 1, first, completion, j if side == "chosen" else n + j)
    elif layout == "packed":
        seqs = [(j, p.prompt, p.chosen) for j, p in enumerate(pairs)] + \
               [(n + j, p.prompt, p.rejected) for j, p in enumerate(pairs)]
        sizes = [len(a) + len(b) for _, a, b in seqs]
        for group in best_fit_decreasing(sizes, row_tokens or sum(sizes), oversized_alone=True):
            r = rows.new_row()
            for i in sorted(group):
                seq, prompt, completion = seqs[i]
                start = rows.add(r, prompt, 0, seq, 0)
                first = rows.add(r, completion, len(prompt), seq, 1)
                rows.piece(r, start)
                rows.score(r, first - 1, first, completion, seq)
    else:
        sizes = [len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs]
        for group in best_fit_decreasing(sizes, row_tokens or sum(sizes), oversized_alone=True):
            r = rows.new_row()
            for j in sorted(group):
                p = pairs[j]
                prompt_first = rows.add(r, p.prompt, 0, j, 0)
                last_prompt = prompt_first + len(p.prompt) - 1
                first = rows.add(r, p.chosen, len(p.prompt), j, 1)
                rows.piece(r, prompt_first)
                rows.score(r, last_prompt, first, p.chosen, j)
                first = rows.add(r, p.rejected, len(p.prompt), j, 2)  # positions restart after the prompt
                rows.piece(r, first, prompt_first, last_prompt + 1)
                rows.score(r, last_prompt, first, p.rejected, n + j)
    ids, pos, seg, branch, t_row, t_index, t_label, t_seq = rows.tensors(pad_id)
    batch = PairBatch(ids, pos, seg, branch, t_row, t_index, t_label, t_seq,
                      chosen_tokens=torch.tensor([len(p.chosen) for p in pairs]),
                      rejected_tokens=torch.tensor([len(p.rejected) for p in pairs]),
                      pair_index=torch.tensor([p.index for p in pairs]), layout=layout, pieces=rows.pieces,
                      segments=packed.Segments.build(rows.pieces, ids.shape[1]))
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


@dataclass
class SequenceScores:
    logps: torch.Tensor        # [2 * pairs] summed completion log-probs: chosen then rejected
    logit_sums: torch.Tensor   # [2 * pairs] sum over completion tokens of the mean (over vocab) logit, no grad
    tokens: torch.Tensor       # [2 * pairs] completion token counts


def completion_logps(model, batch: PairBatch) -> SequenceScores:
    """Summed log-probs of every chosen and rejected completion in the batch. `model`: a TokenScorer (as the
    trainer prepared it) or a causal LM / PEFT model, which gets a TokenScorer with the default chunk size."""
    scorer = scorer_of(model)
    logp, mean_logit = scorer(**batch.scorer_inputs(unwrap(scorer)))
    n_seq, seq = 2 * batch.pairs, batch.target_seq
    logps = torch.zeros(n_seq, dtype=logp.dtype, device=logp.device).index_add(0, seq, logp)
    logit_sums = torch.zeros(n_seq, dtype=torch.float32, device=logp.device).index_add(0, seq, mean_logit)
    tokens = torch.cat([batch.chosen_tokens, batch.rejected_tokens]).to(logp.device)
    return SequenceScores(logps, logit_sums, tokens)
