"""Continuous batching on llama.cpp's own kernels: one context, one KV cache shared by many sequences.

llama-cpp-python's `Llama` (and its server) decodes one request at a time. llama.cpp itself batches: a
`llama_batch` may carry tokens of several sequences (each with its own seq id and positions) through one
`llama_decode`. This decoder keeps one sequence id per live request and, every step, decodes the newest token
of every live request together with the prompts of requests admitted since the last step, then samples each
request's next token from its own logits row (zephyr's sampler: top-k before top-p, per-request seed). A
finished or abandoned request's cells are removed from the cache at once.

A request may carry a GBNF grammar (llama.cpp's grammar sampler): before sampling, the tokens the grammar does
not allow next get a logit of -inf, and the sampled token advances the grammar. Greedy requests first ask
whether the argmax is allowed (one token checked instead of the whole vocabulary).

The cache is unified (`kv_unified`): its `kv_cache_tokens` cells are shared, and a request is admitted only
while the tokens every live request may still need fit.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
import torch

from .batched_decoder import DecoderThread, Request, draw, nucleus, token_logprobs


def sample(logits: np.ndarray, request: Request) -> int:
    """zephyr's sampler on a llama.cpp logits row. The top-k cut is a numpy partition, single-threaded, rather
    than torch.topk, whose threads would compete with llama.cpp's for the same cores; top-p and the draw then
    work on the k survivors."""
    if request.temperature == 0:
        return int(logits.argmax())
    k = request.top_k if 0 < request.top_k < len(logits) else len(logits)
    candidates = np.argpartition(logits, -k)[-k:] if k < len(logits) else np.arange(len(logits))
    values = torch.from_numpy(logits[candidates].astype(np.float32))
    probs, picked = nucleus(values, request.temperature, k, request.top_p)
    return int(candidates[int(picked[draw(probs, request.generator)])])


TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])  # llama_token_data


class Grammar:
    """llama.cpp's grammar sampler for one request: which tokens may come next, advanced token by token. Made
    on the caller's thread (a bad grammar fails the request there), then used by the decoder thread only."""

    def __init__(self, lib, vocab, text: str):
        self.lib = lib
        self.sampler = lib.llama_sampler_init_grammar(vocab, text.encode("utf-8"), b"root")
        if not self.sampler:
            raise ValueError("not a grammar llama.cpp can parse (GBNF with a `root` rule)")

    def mask(self, candidates: np.ndarray, logits: np.ndarray, tokens: np.ndarray | None = None) -> np.ndarray:
        """The logits of `tokens` (default: the whole vocabulary), -inf where the grammar forbids the token.
        `candidates`: a llama_token_data buffer at least as long, reused across calls."""
        ids = np.arange(len(logits), dtype=np.int32) if tokens is None else tokens.astype(np.int32)
        view = candidates[:len(ids)]
        view["id"], view["logit"], view["p"] = ids, logits[ids], 0.0
        array = self.lib.llama_token_data_array(
            data=view.ctypes.data_as(ctypes.POINTER(self.lib.llama_token_data)), size=len(ids), selected=-1,
            sorted=False)
        self.lib.llama_sampler_apply(self.sampler, ctypes.byref(array))
        return view["logit"].copy()

    def accept(self, token: int) -> None:
        self.lib.llama_sampler_accept(self.sampler, token)

    def free(self) -> None:
        if self.sampler:
            self.lib.llama_sampler_free(self.sampler)
            self.sampler = None


class LlamaCppBatcher(DecoderThread):
    """The worker thread (batched_decoder.DecoderThread) driving a llama.cpp context made for `max_num_seqs`
    sequences."""

    thread_name = "zephyr-llama.cpp"

    def __init__(self, llm, kv_cache_tokens: int, max_num_seqs: int = 16, threads: int = 0,
                 batch_tokens: int = 512):
        import llama_cpp
        from llama_cpp import _internals

        self.lib = llama_cpp
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = kv_cache_tokens
        params.n_batch = params.n_ubatch = batch_tokens
        params.n_seq_max = max_num_seqs
        params.kv_unified = True  # all sequences draw on one pool of cells, not n_ctx / n_seq_max each
        # 0 = every core this process may use (llama.cpp's own default is a fixed 4)
        params.n_threads = params.n_threads_batch = threads or len(os.sched_getaffinity(0))
        self.context = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.ctx, self.memory = self.context.ctx, self.context.memory
        self.vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.candidates = np.zeros(self.n_vocab, TOKEN_DATA)  # grammar requests' candidate list (worker thread)
        self._eog: frozenset[int] | None = None
        self.batch = llama_cpp.llama_batch_init(batch_tokens, 0, 1)
        self.batch_tokens, self.kv_cache_tokens, self.max_num_seqs = batch_tokens, kv_cache_tokens, max_num_seqs
        self.free_seqs = list(range(max_num_seqs))
        self.live: dict[int, Request] = {}  # seq id -> request
        self.past: dict[int, int] = {}      # seq id -> tokens in the cache
        self.last: dict[int, int] = {}      # seq id -> newest token, not yet in the cache
        self._start()

    def grammar(self, text: str) -> Grammar:
        return Grammar(self.lib, self.vocab, text)

    def end_of_generation_ids(self) -> frozenset[int]:
        """Every end-of-generation token of the vocabulary: the only ones a finished grammar allows."""
        if self._eog is None:
            self._eog = frozenset(i for i in range(self.n_vocab) if self.lib.llama_vocab_is_eog(self.vocab, i))
        return self._eog

    def close(self, timeout: float = 10) -> None:
        super().close(timeout)
        if not self.thread.is_alive():
            self.lib.llama_batch_free(self.batch)
            self.context.close()

    def _live(self) -> list[Request]:
        return list(self.live.values())

    def _fail(self, admitted: list, error: BaseException) -> None:
        for seq, request in list(self.live.items()):
            self._send(request, None, None, error)
            self._release(seq)

    def _admit(self) -> list[tuple[int, Request]]:
        """Waiting requests that get a sequence id and whose worst case fits the cells left."""
        reserved = sum(r.reserved_tokens() for r in self.live.values())
        admitted = []
        while self.waiting and self.free_seqs:
            request = self.waiting[0]
            if request.cancelled:
                self._forget(self.waiting.popleft())
                continue
            if self.live or admitted:
                if reserved + request.reserved_tokens() > self.kv_cache_tokens:
                    break
            reserved += request.reserved_tokens()
            seq = self.free_seqs.pop(0)
            self.live[seq], self.past[seq] = self.waiting.popleft(), 0
            admitted.append((seq, self.live[seq]))
        return admitted

    def _step(self, admitted: list[tuple[int, Request]]) -> None:
        for seq in [s for s, r in self.live.items() if r.cancelled]:
            self._release(seq)
        new = {seq for seq, _ in admitted}
        # (seq, token, position, wants logits): one new token per running request, whole prompts for new ones
        entries = [(seq, self.last[seq], self.past[seq], True) for seq in self.live if seq not in new]
        self.max_batch_seen = max(self.max_batch_seen, len(entries) + len(admitted))
        for seq, request in admitted:
            if seq in self.live:
                n = len(request.prompt)
                entries += [(seq, token, i, i == n - 1) for i, token in enumerate(request.prompt)]
        for start in range(0, len(entries), self.batch_tokens):
            chunk = entries[start:start + self.batch_tokens]
            self._decode(chunk)
            for i, (seq, token, position, wants) in enumerate(chunk):
                self.past[seq] = position + 1
                if wants and seq in self.live:
                    self._sample(seq, i)

    def _decode(self, chunk) -> None:
        batch = self.batch
        batch.n_tokens = len(chunk)
        for i, (seq, token, position, wants) in enumerate(chunk):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, position, 1, wants
            batch.seq_id[i][0] = seq
        status = self.lib.llama_decode(self.ctx, batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status} (1: no room left in the KV cache)")

    def _sample(self, seq: int, index: int) -> None:
        request = self.live[seq]
        pointer = self.lib.llama_get_logits_ith(self.ctx, index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        token = sample(self._allowed(logits, request) if request.grammar else logits, request)
        logprobs = None
        if request.top_logprobs is not None:  # read now: the next decode overwrites llama.cpp's logits buffer
            logprobs = token_logprobs(torch.from_numpy(logits.copy()), token, request.top_logprobs)
        self.last[seq] = token
        request.generated += 1
        finish = "stop" if token in request.stop_ids else "length" if request.generated >= request.max_tokens else None
        if finish is None and request.grammar:
            request.grammar.accept(token)
        if finish is not None:
            self._release(seq)  # before the client hears it is done: its cells are free by then
        self._send(request, token, finish, logprobs=logprobs)
        if finish is None and request.cancelled:
            self._release(seq)

    def _allowed(self, logits: np.ndarray, request: Request) -> np.ndarray:
        """The logits with every token the request's grammar forbids at -inf; a greedy request whose argmax the
        grammar allows gets them unchanged, after checking that one token rather than the whole vocabulary."""
        grammar = request.grammar
        if request.temperature == 0:
            best = np.array([logits.argmax()])
            if np.isfinite(grammar.mask(self.candidates, logits, best)[0]):
                return logits
        masked = grammar.mask(self.candidates, logits)
        if not np.isfinite(masked).any():
            raise RuntimeError("the grammar allows no token here")
        return masked

    @staticmethod
    def _forget(request: Request) -> None:
        if request.grammar:
            request.grammar.free()

    def _release(self, seq: int) -> None:
        self.lib.llama_memory_seq_rm(self.memory, seq, -1, -1)
        if seq in self.live:
            self._forget(self.live[seq])
        self.live.pop(seq, None)
        self.past.pop(seq, None)
        self.last.pop(seq, None)
        self.free_seqs.append(seq)
