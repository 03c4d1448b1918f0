"""The fallback engine: transformers' own continuous batching (paged KV cache, per-request sampling).

`model.init_continuous_batching()` runs one background thread that schedules every live request into each
forward pass, so 16 clients share one batched step instead of queueing behind a lock. Per-request
temperature / top-k / top-p use transformers' per-request logits processors; greedy (temperature 0) is
top-k 1, which picks the argmax exactly. A request's `seed` is not honoured by this engine (one shared
sampler); llama.cpp's engine honours it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import AsyncIterator, Sequence

from ..models import ModelConfig, load_model, load_tokenizer
from .engine import HFTokenizerEngine, Prompt, Step
from .protocol import ApiError, Sampling

PAGE_SIZE = 256  # tokens per KV-cache page


class TransformersEngine(HFTokenizerEngine):
    name = "transformers"

    def __init__(self, model: str, model_id: str, chat_template: str = "auto", dtype: str = "auto",
                 context_length: int = 0, kv_cache_tokens: int = 32768, max_num_seqs: int = 32,
                 defaults: Sampling | None = None):
        super().__init__()
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        config = ModelConfig(model=model, chat_template=chat_template, dtype=dtype)
        self.tokenizer = load_tokenizer(config)
        if not self.tokenizer.is_fast:
            raise ApiError(500, "the transformers engine needs a fast (Rust) tokenizer for streaming")
        self.template = config.chat_template
        self.model = load_model(config, self.tokenizer).eval()
        self.model_id = model_id
        own_limit = getattr(self.model.config.get_text_config(), "max_position_embeddings", None) or 2048
        self.context_length = min(context_length or own_limit, own_limit)
        self.vocab_size = self.model.get_input_embeddings().weight.shape[0]
        defaults = defaults or Sampling(None, 0.7, 0.95, 50)
        # the processors must exist in the shared config for per-request values to apply, hence values != neutral
        shared = GenerationConfig(do_sample=True, temperature=0.7, top_k=50, top_p=0.95,
                                  max_new_tokens=min(256, self.context_length),
                                  eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id)
        # a fixed KV budget rather than transformers' CPU default of 60% of RAM, which a shared machine cannot give
        cache_tokens = max(kv_cache_tokens, self.context_length)
        batching = ContinuousBatchingConfig(per_request_processors=True, page_size=PAGE_SIZE,
                                            num_blocks=-(-cache_tokens // PAGE_SIZE),
                                            max_requests_per_batch=max_num_seqs, max_batch_tokens=1024)
        self.manager = self.model.init_continuous_batching(generation_config=shared,
                                                           continuous_batching_config=batching)
        self.manager.start()
        self.defaults = defaults

    def _processor_kwargs(self, sampling: Sampling) -> dict:
        if sampling.temperature == 0:
            return {"temperature": 1.0, "top_k": 1, "top_p": 1.0}
        top_k = sampling.top_k if 0 < sampling.top_k < self.vocab_size else self.vocab_size
        return {"temperature": float(sampling.temperature), "top_k": int(top_k), "top_p": float(sampling.top_p)}

    async def stream(self, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int]) -> AsyncIterator[Step]:
        from tokenizers.decoders import DecodeStream

        fatal = self.manager.background_thread_status.fatal_error
        if fatal is not None:
            raise ApiError(503, f"the generation worker stopped: {fatal}", type="server_error")
        outputs: asyncio.Queue = asyncio.Queue()
        request_id = f"req-{uuid.uuid4().hex}"
        self.manager.register_result_handler(request_id, outputs.put_nowait)  # before add: a fast reply is not lost
        self.manager.add_request(list(prompt.ids), request_id=request_id, max_new_tokens=sampling.max_tokens,
                                 streaming=True, eos_token_id=list(stop_ids) or self.tokenizer.eos_token_id,
                                 **self._processor_kwargs(sampling))
        decoder = DecodeStream(skip_special_tokens=False)
        stops = set(stop_ids)
        seen, finished = 0, False
        try:
            while True:
                output = await outputs.get()
                if output.error is not None:
                    finished = True
                    raise ApiError(500, f"generation failed: {output.error}", type="server_error")
                new = output.generated_tokens[seen:]
                seen = len(output.generated_tokens)
                text = []
                for token in new:
                    if token in stops:
                        continue
                    piece = decoder.step(self.tokenizer._tokenizer, token)
                    if piece:
                        text.append(piece)
                if output.is_finished():
                    finished = True
                    ended = bool(output.generated_tokens) and output.generated_tokens[-1] in stops
                    yield Step("".join(text), seen, "stop" if ended else "length")
                    return
                if text:
                    yield Step("".join(text), seen)
        finally:
            if not finished:
                self.manager.cancel_request(request_id)

    def close(self) -> None:
        self.manager.stop(block=True, timeout=5)
