"""A small continuous-batching decoder on top of a causal LM's own forward and a transformers `DynamicCache`.

Why not transformers' `init_continuous_batching`: profiled on CPU with gemma-3-270m, its per-request top-k and
top-p processors each run a full `torch.sort` over the 262k-token vocabulary for every row at every step
(~50 ms per sort on this 2-core machine, as long as the whole forward), so one stream ran at a third of plain
`generate` and 16 streams were slower than one. Here top-k runs first with `torch.topk` (sub-millisecond) and
top-p only sorts the k survivors, and all live requests share every decode forward.

Layout of the shared batch: every row's real tokens are contiguous and right-aligned in the cache, with zero
padding on the left (rows that joined later or are shorter). So one length per row describes everything: the
attention mask (the last `length` columns are real), the position id of the next token (= length), and how
much common left padding can be trimmed when the longest row leaves. A new request is prefilled alone (no
padding inside a prefill, so no fully-masked query rows) and then joined to the batch by left-padding.
"""

from __future__ import annotations

import collections
import random
import threading
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

# emit(token, finish, error): finish is None, "stop" or "length"; error is set (and token None) when the step failed
Emit = Callable[[int | None, str | None, BaseException | None], None]


@dataclass(eq=False)  # compared by identity: two identical prompts are still two requests
class Request:
    prompt: list[int]
    max_tokens: int
    temperature: float  # 0 = greedy
    top_k: int  # 0 = no limit
    top_p: float
    stop_ids: frozenset[int]
    emit: Emit
    seed: int | None = None
    generated: int = 0
    cancelled: bool = False
    done: bool = False  # its last token (or an error) was sent
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        # per-request generator: a request's seed gives the same reply whatever else shares the batch
        self.generator = torch.Generator().manual_seed(random.getrandbits(63) if self.seed is None else self.seed)

    def reserved_tokens(self) -> int:
        return len(self.prompt) + self.max_tokens


def sample_row(logits: torch.Tensor, request: Request) -> int:
    """One token from a row of logits: temperature, then top-k, then top-p (transformers' warper order).

    Top-k before top-p means the nucleus is cut from k sorted values instead of sorting the whole vocabulary.
    """
    if request.temperature == 0:
        return int(logits.argmax())
    vocab = logits.shape[-1]
    k = request.top_k if 0 < request.top_k < vocab else vocab  # top-k off: the full sort cannot be avoided
    values, indices = (logits / request.temperature).topk(k)  # sorted, largest first
    probs = values.softmax(-1)
    # nucleus: keep the smallest prefix whose mass reaches top_p (a token stays if the mass before it is < top_p)
    keep = (probs.cumsum(-1) - probs) < request.top_p
    choice = torch.multinomial(probs * keep, 1, generator=request.generator)
    return int(indices[choice])


class BatchedDecoder:
    """One background thread; between decode steps it admits waiting requests, then decodes all live ones."""

    def __init__(self, model, max_num_seqs: int = 32, kv_cache_tokens: int = 32768):
        self.model = model
        self.max_num_seqs = max_num_seqs
        self.kv_cache_tokens = kv_cache_tokens
        self.device = next(model.parameters()).device
        self.waiting: collections.deque[Request] = collections.deque()
        self.wake = threading.Condition()
        self.stopping = False
        self.max_batch_seen = 0  # most requests that shared one decode forward: tests check batching happens
        self._reset_batch()
        self.thread = threading.Thread(target=self._loop, name="zephyr-decoder", daemon=True)
        self.thread.start()

    def _reset_batch(self) -> None:
        self.rows: list[Request] = []
        self.cache = None  # DynamicCache of the live rows, left-padded to a common width
        self.lengths = torch.zeros(0, dtype=torch.long, device=self.device)  # real tokens per row
        self.last = torch.zeros(0, dtype=torch.long, device=self.device)  # each row's newest token, next input

    # ---- called from other threads ----

    def submit(self, request: Request) -> None:
        with self.wake:
            self.waiting.append(request)
            self.wake.notify()

    def cancel(self, request: Request) -> None:
        request.cancelled = True  # dropped before the next step; a plain flag write, no lock needed

    def close(self, timeout: float = 10) -> None:
        with self.wake:
            self.stopping = True
            self.wake.notify()
        self.thread.join(timeout)

    # ---- the worker thread ----

    def _loop(self) -> None:
        while True:
            with self.wake:
                while not self.stopping and not self.waiting and not self.rows:
                    self.wake.wait()
                if self.stopping:
                    break
                admitted = self._take_admissible()
            try:
                with torch.inference_mode():
                    for request in admitted:
                        self._prefill(request)
                    self._drop(lambda r: r.cancelled)
                    if self.rows:
                        self._decode_step()
            except Exception as err:  # a failed forward fails the requests it touched; the server keeps serving
                for request in {id(r): r for r in self.rows + admitted}.values():
                    if not request.done:
                        self._send(request, None, None, err)
                self._reset_batch()
        for request in self.rows + list(self.waiting):
            self._send(request, None, None, RuntimeError("the server is shutting down"))

    def _take_admissible(self) -> list[Request]:
        """Waiting requests that fit the batch: at most max_num_seqs rows, and a padded cache within budget."""
        admitted: list[Request] = []
        widest = max((r.reserved_tokens() for r in self.rows), default=0)
        while self.waiting and len(self.rows) + len(admitted) < self.max_num_seqs:
            request = self.waiting[0]
            if request.cancelled:
                self.waiting.popleft()
                continue
            rows = len(self.rows) + len(admitted) + 1
            width = max(widest, request.reserved_tokens())
            if rows > 1 and rows * width > self.kv_cache_tokens:  # the padded cache is rows x widest row
                break
            admitted.append(self.waiting.popleft())
            widest = width
        return admitted

    def _send(self, request: Request, token: int | None, finish: str | None, error: BaseException | None = None):
        request.done = request.done or finish is not None or error is not None
        try:
            request.emit(token, finish, error)
        except RuntimeError:  # the client's event loop is gone: nobody is listening any more
            request.cancelled = True

    def _record(self, request: Request, token: int) -> bool:
        """Hand a sampled token to its client; True when the request is finished."""
        request.generated += 1
        finish = "stop" if token in request.stop_ids else "length" if request.generated >= request.max_tokens else None
        self._send(request, token, finish)
        return finish is not None or request.cancelled

    def _prefill(self, request: Request) -> None:
        from transformers import DynamicCache

        if request.cancelled:
            return
        # a config-less DynamicCache keeps every layer's full history (no sliding-window trimming), so rows can be
        # padded and joined uniformly; the model's mask still applies each layer's sliding window
        cache = DynamicCache()
        ids = torch.tensor([request.prompt], device=self.device)
        logits = self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        token = sample_row(logits[0].float(), request)
        if self._record(request, token):
            return
        self._join(cache, len(request.prompt), request, token)

    def _join(self, cache, length: int, request: Request, token: int) -> None:
        """Add a prefilled one-row cache to the batch, left-padding whichever side is shorter."""
        if not self.rows:
            self.cache = cache
        else:
            width, new_width = self._width(), cache.get_seq_length()
            target = max(width, new_width)
            for mine, theirs in zip(self.cache.layers, cache.layers):
                mine.keys = torch.cat([_pad_left(mine.keys, target - width), _pad_left(theirs.keys, target - new_width)])
                mine.values = torch.cat([_pad_left(mine.values, target - width),
                                         _pad_left(theirs.values, target - new_width)])
        self.rows.append(request)
        self.lengths = torch.cat([self.lengths, torch.tensor([length], device=self.device)])
        self.last = torch.cat([self.last, torch.tensor([token], device=self.device)])

    def _width(self) -> int:
        return self.cache.get_seq_length() if self.cache is not None else 0

    def _decode_step(self) -> None:
        width = self._width() + 1  # the cache plus this step's token
        self.lengths += 1
        # right-aligned rows: column j is real for row b when j >= width - length_b
        mask = (torch.arange(width, device=self.device)[None, :] >= (width - self.lengths)[:, None]).long()
        logits = self.model(input_ids=self.last[:, None], attention_mask=mask, position_ids=(self.lengths - 1)[:, None],
                            past_key_values=self.cache, use_cache=True).logits[:, -1].float()
        self.max_batch_seen = max(self.max_batch_seen, len(self.rows))
        finished = set()
        for index, request in enumerate(self.rows):
            token = sample_row(logits[index], request)
            self.last[index] = token
            if self._record(request, token):
                finished.add(id(request))
        self._drop(lambda r: id(r) in finished)

    def _drop(self, leaving: Callable[[Request], bool]) -> None:
        """Remove rows, then trim the left padding that no remaining row needs."""
        keep = [i for i, r in enumerate(self.rows) if not leaving(r)]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self._reset_batch()
            return
        index = torch.tensor(keep, device=self.device)
        self.rows = [self.rows[i] for i in keep]
        self.lengths, self.last = self.lengths[index], self.last[index]
        trim = self._width() - int(self.lengths.max())
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, trim:]
            layer.values = layer.values[index, :, trim:]


def _pad_left(states: torch.Tensor, columns: int) -> torch.Tensor:
    """Zero columns in front of the sequence axis of [batch, heads, seq, dim] keys or values."""
    return F.pad(states, (0, 0, columns, 0)) if columns else states
