"""A small continuous-batching decoder on top of a causal LM's own forward and a transformers `DynamicCache`.

Why not transformers' `init_continuous_batching`: its per-request top-k and top-p processors each `torch.sort`
the whole vocabulary (262k tokens for Gemma 3) for every row at every step, so sampling cost grows with the batch
as fast as batching saves. Here top-k runs first with `torch.topk` and top-p only sorts the k survivors, and all
live requests share every decode forward.

Layout of the shared batch: every row's real tokens are contiguous and right-aligned in the cache, with zero
padding on the left (rows that joined later or are shorter). So one length per row describes everything: the
attention mask (the last `length` columns are real), the position id of the next token (= length), and how
much common left padding can be trimmed when the longest row leaves. Requests that arrive together are
prefilled together (left-padded, as `generate` does), then joined to the batch by left-padding the narrower
side. Requests admitted together are prefilled in order of prompt length, in groups that keep padding small.
Rows leave when they hit a stop id or max_tokens, or are cancelled (the client went away).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import random
import threading
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Protocol

import torch
import torch.nn.functional as F

from .engine import Step
from .protocol import ApiError

# padded tokens of one batched prefill at most: a long prompt would make short ones pay for its padding
PREFILL_TOKENS = 2048
# padding allowed in a batched prefill, as a share of its real tokens
PREFILL_PADDING = 0.25

# emit(token, finish, error, logprobs): finish is None, "stop" or "length"; error is set (and token None) when the
# step failed; logprobs (when the request asked for them) is (the token's log-probability, [(id, logprob)] of the
# most likely alternatives)
Emit = Callable[[int | None, str | None, BaseException | None, tuple | None], None]


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
    top_logprobs: int | None = None  # None: no log-probabilities; k: with the k most likely alternatives
    grammar: object | None = None  # a llama.cpp engine's grammar sampler (llamacpp_batched.Grammar)
    generated: int = 0
    cancelled: bool = False
    done: bool = False  # its last token (or an error) was sent
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        # per-request generator: a request's seed gives the same reply whatever else shares the batch
        self.generator = torch.Generator().manual_seed(random.getrandbits(63) if self.seed is None else self.seed)

    def reserved_tokens(self) -> int:
        return len(self.prompt) + self.max_tokens


class TokenText(Protocol):
    """Turns a reply's tokens into text as they arrive, never splitting a character."""

    def add(self, token: int) -> str: ...

    def finish(self) -> str: ...  # whatever was held back, once the reply is over

    def token(self, token: int) -> str: ...  # one token's own text (log-probability entries)


def logprob_entry(text: TokenText, token: int, logprobs: tuple) -> dict:
    """OpenAI's `logprobs.content` entry: the token, its log-probability and bytes, and the top alternatives."""
    chosen, top = logprobs

    def described(token_id: int, logprob: float) -> dict:
        string = text.token(token_id)
        return {"token": string, "logprob": logprob, "bytes": list(string.encode("utf-8", "replace"))}

    return {**described(token, chosen), "top_logprobs": [described(i, lp) for i, lp in top]}


async def stream_steps(worker: "DecoderThread", prompt_ids: list[int], sampling, stop_ids, context_length: int,
                       text: TokenText, failure: str, top_logprobs: int | None = None,
                       grammar: object | None = None) -> AsyncIterator[Step]:
    """Submit a request to `worker` and stream its reply; the last step carries the finish reason.

    A stop id ends the reply without being shown. max_new_tokens 0 means up to the end of the context. When the
    caller stops early (the client went away, a stop string matched) the request is cancelled."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    request = Request(list(prompt_ids), max_tokens=sampling.max_new_tokens or context_length - len(prompt_ids),
                      temperature=float(sampling.temperature), top_k=int(sampling.top_k),
                      top_p=float(sampling.top_p), stop_ids=frozenset(stop_ids), seed=sampling.seed,
                      top_logprobs=top_logprobs, grammar=grammar,
                      emit=lambda *event: loop.call_soon_threadsafe(events.put_nowait, event))
    worker.submit(request)
    count = 0  # counted here: request.generated belongs to the worker thread and may already be ahead
    try:
        while True:
            token, finish, error, logprobs = await events.get()
            if error is not None:
                raise ApiError(500, f"{failure}: {error}", type="server_error")
            count += 1
            shown = token not in request.stop_ids
            piece = text.add(token) if shown else ""
            if finish:
                piece += text.finish()
            entries = [logprob_entry(text, token, logprobs)] if logprobs is not None and shown else None
            if finish or piece or entries:
                yield Step(piece, count, finish, entries)
            if finish:
                return
    finally:
        worker.cancel(request)  # a no-op when finished; frees the request's place when the caller left early


def nucleus(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, token ids) left after temperature, then top-k, then top-p: transformers' warper order.

    Top-k before top-p means the nucleus is cut from k sorted values instead of sorting the whole vocabulary;
    with neither cut nothing is sorted (a 262k vocabulary's sort costs more than a decode step of a small model).
    """
    vocab = logits.shape[-1]
    k = top_k if 0 < top_k < vocab else vocab  # top-k off: only then is the whole vocabulary sorted
    if k == vocab and top_p >= 1.0:
        return (logits / temperature).softmax(-1), torch.arange(vocab)
    values, indices = (logits / temperature).topk(k)  # sorted, largest first
    probs = values.softmax(-1)
    if top_p >= 1.0:  # top-p off: keep all (a float cumsum can reach 1.0 before the tail and drop it)
        return probs, indices
    # keep the smallest prefix whose mass reaches top_p: a token stays while the mass before it is < top_p
    keep = (probs.cumsum(-1) - probs) < top_p
    probs = probs[keep]
    return probs / probs.sum(), indices[keep]


def sample_rows(logits: torch.Tensor, requests: list[Request]) -> list[int]:
    """One token per row of logits [rows, vocab], each with its request's own settings and generator.

    The greedy rows take one argmax over the whole batch instead of one per row, in the logits' own dtype (bf16 ->
    fp32 is exact, so the token is the same); only sampled rows are converted to fp32."""
    greedy = logits.argmax(-1).tolist() if any(r.temperature == 0 for r in requests) else None
    tokens = []
    for index, (row, request) in enumerate(zip(logits, requests)):
        if request.temperature == 0:
            tokens.append(greedy[index])
        else:
            probs, indices = nucleus(row.float(), request.temperature, request.top_k, request.top_p)
            tokens.append(int(indices[draw(probs, request.generator)]))
    return tokens


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """An index drawn with probability probs[i] / sum(probs): one uniform number located in the cumulative sum
    (in float64). torch.multinomial does the same job about ten times slower over a 262k vocabulary."""
    cdf = probs.double().cumsum(-1)
    u = torch.rand((), generator=generator, dtype=torch.float64) * cdf[-1]
    return min(int(torch.searchsorted(cdf, u, right=True)), len(cdf) - 1)


def token_logprobs(logits: torch.Tensor, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    """The model's log-probability of `token` and its k most likely tokens, from the raw logits (before
    temperature and truncation, as OpenAI and vLLM report them)."""
    logprobs = logits.float().log_softmax(-1)
    top = logprobs.topk(k) if k else None
    alternatives = list(zip(top.indices.tolist(), top.values.tolist())) if top is not None else []
    return float(logprobs[token]), alternatives


class DecoderThread:
    """The worker shape both batching engines share: requests are submitted from any thread; one background
    thread, between steps, admits waiting requests (`_admit`) and then runs one step over every live one
    (`_step`). A failed step fails the requests it touched (`_fail`) and the worker keeps serving."""

    thread_name = "zephyr-decoder"

    def _start(self) -> None:
        self.waiting: collections.deque[Request] = collections.deque()
        self.wake = threading.Condition()
        self.stopping = False
        self.max_batch_seen = 0  # most requests that shared one step: tests check batching happens
        self.thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self.thread.start()

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

    def _live(self) -> list[Request]:
        raise NotImplementedError

    def _admit(self) -> list:
        raise NotImplementedError

    def _step(self, admitted: list) -> None:
        raise NotImplementedError

    def _fail(self, admitted: list, error: BaseException) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while True:
            with self.wake:
                while not self.stopping and not self.waiting and not self._live():
                    self.wake.wait()
                if self.stopping:
                    break
                admitted = self._admit()
            try:
                self._step(admitted)
            except Exception as err:  # a failed step fails the requests it touched; the server keeps serving
                self._fail(admitted, err)
        for request in self._live() + list(self.waiting):
            self._send(request, None, None, RuntimeError("the server is shutting down"))

    def _send(self, request: Request, token: int | None, finish: str | None, error: BaseException | None = None,
              logprobs: tuple | None = None):
        request.done = request.done or finish is not None or error is not None
        try:
            request.emit(token, finish, error, logprobs)
        except RuntimeError:  # the client's event loop is gone: nobody is listening any more
            request.cancelled = True


class BatchedDecoder(DecoderThread):
    """Continuous batching on a transformers model: between decode steps it admits waiting requests
    (prefilled together, then joined to the batch), then decodes all live ones in one forward."""

    def __init__(self, model, max_num_seqs: int = 32, kv_cache_tokens: int = 32768):
        self.model = model
        # transformers 5.24 renamed forward's `past_key_values` to `cache` (the old name warns; removal is
        # announced for 5.40): pass the KV cache under whichever name this version's forward takes
        forward = getattr(model, "get_base_model", lambda: model)().forward
        self.cache_kwarg = "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"
        self.max_num_seqs = max_num_seqs
        self.kv_cache_tokens = kv_cache_tokens
        self.device = next(model.parameters()).device
        from .decode_attention import SlackLayer, use_decode_attention  # imports transformers: only when used

        # on a CPU, decode steps read only what each run of rows attends and the KV cache grows in place
        # (decode_attention.py)
        self.layer_class = SlackLayer if self.device.type == "cpu" and use_decode_attention(model) else None
        self._reset_batch()
        self._start()

    def _reset_batch(self) -> None:
        self.rows: list[Request] = []
        self.cache = None  # DynamicCache of the live rows, left-padded to a common width
        self.lengths = torch.zeros(0, dtype=torch.long, device=self.device)  # real tokens per row
        self.last = torch.zeros(0, dtype=torch.long, device=self.device)  # each row's newest token, next input

    def _live(self) -> list[Request]:
        return self.rows

    def _admit(self) -> list[Request]:
        return self._take_admissible()

    def _step(self, admitted: list[Request]) -> None:
        with torch.inference_mode():
            for group in _prefill_groups(admitted):
                self._prefill(group)
            self._drop(lambda r: r.cancelled)
            if self.rows:
                self._decode_step()

    def _fail(self, admitted: list[Request], error: BaseException) -> None:
        for request in {id(r): r for r in self.rows + admitted}.values():
            if not request.done:
                self._send(request, None, None, error)
        self._reset_batch()

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

    def _record(self, request: Request, token: int, logits: torch.Tensor | None = None) -> bool:
        """Hand a sampled token (with its log-probabilities when asked for) to its client; True when the request
        is finished."""
        request.generated += 1
        finish = "stop" if token in request.stop_ids else "length" if request.generated >= request.max_tokens else None
        logprobs = None
        if request.top_logprobs is not None and logits is not None:
            logprobs = token_logprobs(logits, token, request.top_logprobs)
        self._send(request, token, finish, logprobs=logprobs)
        return finish is not None or request.cancelled

    def _prefill(self, requests: list[Request]) -> None:
        """Prefill newly admitted requests together (left-padded), sample their first tokens, join the batch."""
        from transformers import DynamicCache

        requests = [r for r in requests if not r.cancelled]
        if not requests:
            return
        lengths = torch.tensor([len(r.prompt) for r in requests], device=self.device)
        width = int(lengths.max())
        ids = torch.tensor([[0] * (width - len(r.prompt)) + r.prompt for r in requests], device=self.device)
        real = torch.arange(width, device=self.device)[None, :] >= (width - lengths)[:, None]
        positions = (torch.arange(width, device=self.device)[None, :] - (width - lengths)[:, None]).clamp(min=0)
        # a config-less DynamicCache keeps every layer's full history (no sliding-window trimming), so rows can be
        # padded and joined uniformly; the model's mask still applies each layer's sliding window
        cache = DynamicCache()
        if self.layer_class is not None:
            cache.layer_class_to_replicate = self.layer_class
        logits = self.model(input_ids=ids, attention_mask=real.long(), position_ids=positions, use_cache=True,
                            logits_to_keep=1, **{self.cache_kwarg: cache}).logits[:, -1]
        for layer in cache.layers:  # padding columns are masked forever after; zeros keep them harmless
            layer.keys.masked_fill_(~real[:, None, :, None], 0)
            layer.values.masked_fill_(~real[:, None, :, None], 0)
        tokens = sample_rows(logits, requests)
        going = [i for i, r in enumerate(requests) if not self._record(r, tokens[i], logits[i])]
        if going:
            index = torch.tensor(going, device=self.device)
            self._join(cache, index, lengths[index], [requests[i] for i in going], [tokens[i] for i in going])

    def _join(self, cache, index: torch.Tensor, lengths: torch.Tensor, requests: list[Request],
              tokens: list[int]) -> None:
        """Add rows `index` of a prefilled cache to the batch, left-padding whichever side is narrower."""
        new_width = int(lengths.max())
        trim = cache.get_seq_length() - new_width  # padding that only finished prefill rows needed
        width = self._width()
        target = max(width, new_width)
        for layer_index, theirs in enumerate(cache.layers):
            keys = _pad_left(theirs.keys[index, :, trim:], target - new_width)
            values = _pad_left(theirs.values[index, :, trim:], target - new_width)
            if self.rows:
                mine = self.cache.layers[layer_index]
                keys = torch.cat([_pad_left(mine.keys, target - width), keys])
                values = torch.cat([_pad_left(mine.values, target - width), values])
            theirs.keys, theirs.values = keys, values
        self.cache = cache  # now holds the old rows followed by the new ones
        self.rows += requests
        self.lengths = torch.cat([self.lengths, lengths])
        self.last = torch.cat([self.last, torch.tensor(tokens, device=self.device)])

    def _width(self) -> int:
        return self.cache.get_seq_length() if self.cache is not None else 0

    def _decode_step(self) -> None:
        width = self._width() + 1  # the cache plus this step's token
        self.lengths += 1
        # right-aligned rows: column j is real for row b when j >= width - length_b
        mask = (torch.arange(width, device=self.device)[None, :] >= (width - self.lengths)[:, None]).long()
        logits = self.model(input_ids=self.last[:, None], attention_mask=mask, position_ids=(self.lengths - 1)[:, None],
                            use_cache=True, **{self.cache_kwarg: self.cache}).logits[:, -1]
        self.max_batch_seen = max(self.max_batch_seen, len(self.rows))
        tokens = sample_rows(logits, self.rows)
        self.last = torch.tensor(tokens, device=self.device)
        finished = set()
        for index, request in enumerate(self.rows):
            if self._record(request, tokens[index], logits[index]):
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


def _prefill_groups(requests: list[Request]) -> list[list[Request]]:
    """Requests in order of prompt length, cut into groups prefilled together: a group's left-padded prefill
    stays under PREFILL_TOKENS and pads at most PREFILL_PADDING of its real tokens (one long prompt goes alone).
    Padding is computed like real tokens, so mixing a 60-token prompt with a 1,000-token one would cost as much
    as 16 such prompts."""
    groups: list[list[Request]] = []
    real = 0
    for request in sorted(requests, key=lambda r: len(r.prompt)):
        group, n = (groups[-1] if groups else None), len(request.prompt)
        padded = (len(group) + 1) * n if group else 0  # sorted: the newcomer is the group's longest prompt
        if group and padded <= PREFILL_TOKENS and padded <= (1 + PREFILL_PADDING) * (real + n):
            group.append(request)
            real += n
        else:
            groups.append([request])
            real = n
    return groups


def _pad_left(states: torch.Tensor, columns: int) -> torch.Tensor:
    """Zero columns in front of the sequence axis of [batch, heads, seq, dim] keys or values."""
    return F.pad(states, (0, 0, columns, 0)) if columns else states
