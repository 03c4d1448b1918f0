"""The fallback engine: any transformers causal LM, served by zephyr's own batched decoder (batched_decoder.py).

One background thread runs the model; every live request shares each decode forward, and new requests join
between steps, so 16 clients share one batched step instead of queueing behind a lock. Sampling is per
request (temperature, top-k, then top-p over the k survivors; greedy at temperature 0) and a request's `seed`
gives a reproducible reply whatever else is in the batch.
"""

from __future__ import annotations

from typing import AsyncIterator, Sequence

from ..models import ModelConfig, load_model, load_tokenizer
from ..sampling import Sampling
from .batched_decoder import BatchedDecoder, stream_steps
from .engine import HFTokenizerEngine, Prompt, Step
from .protocol import ApiError


class StreamedText:
    """A fast tokenizer's text, token by token (`DecodeStream`). DecodeStream holds back an unfinished character;
    at the end, the whole reply's decode says what it is."""

    def __init__(self, tokenizer):
        from tokenizers.decoders import DecodeStream

        self.tokenizer = tokenizer
        self.decoder = DecodeStream(skip_special_tokens=False)
        self.shown: list[int] = []  # the reply's token ids
        self.sent: list[str] = []  # the text streamed for them

    def add(self, token: int) -> str:
        self.shown.append(token)
        text = self.decoder.step(self.tokenizer._tokenizer, token) or ""
        self.sent.append(text)
        return text

    def finish(self) -> str:
        whole, streamed = self.tokenizer.decode(self.shown), "".join(self.sent)
        return whole[len(streamed):] if whole.startswith(streamed) else ""

    def token(self, token: int) -> str:
        return self.tokenizer.decode([token])


class TransformersEngine(HFTokenizerEngine):
    name = "transformers"
    supports_logprobs = True

    def __init__(self, model: str, model_id: str, chat_template: str = "auto", dtype: str = "auto",
                 context_length: int = 0, kv_cache_tokens: int = 32768, max_num_seqs: int = 32):
        config = ModelConfig(model=model, chat_template=chat_template, dtype=dtype)
        self.tokenizer = load_tokenizer(config)
        if not self.tokenizer.is_fast:
            raise ApiError(500, "the transformers engine needs a fast (Rust) tokenizer for streaming")
        self.template = config.chat_template
        self.model = load_model(config, self.tokenizer).eval()
        self.model_id = model_id
        own_limit = getattr(self.model.config.get_text_config(), "max_position_embeddings", None) or 2048
        self.context_length = min(context_length or own_limit, own_limit)
        # a fixed KV budget rather than "what memory allows", which a shared machine cannot promise
        self.decoder = BatchedDecoder(self.model, max_num_seqs=max_num_seqs,
                                      kv_cache_tokens=max(kv_cache_tokens, self.context_length))

    def stream(self, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int],
               top_logprobs: int | None = None) -> AsyncIterator[Step]:
        return stream_steps(self.decoder, prompt.ids, sampling, stop_ids, self.context_length,
                            StreamedText(self.tokenizer), "generation failed", top_logprobs)

    def close(self) -> None:
        self.decoder.close()
