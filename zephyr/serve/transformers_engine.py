"""The fallback engine: any transformers causal LM, served by zephyr's own batched decoder (batched_decoder.py).

One background thread runs the model; every live request shares each decode forward, and new requests join
between steps, so 16 clients share one batched step instead of queueing behind a lock. Sampling is per
request (temperature, top-k, then top-p over the k survivors; greedy at temperature 0) and a request's `seed`
gives a reproducible reply whatever else is in the batch.
"""

from __future__ import annotations

from typing import AsyncIterator, Sequence

from ..models import ModelConfig, load_model, load_tokenizer
from .batched_decoder import BatchedDecoder, submitted
from .engine import HFTokenizerEngine, Prompt, Step
from .protocol import ApiError, Sampling


class TransformersEngine(HFTokenizerEngine):
    name = "transformers"

    def __init__(self, model: str, model_id: str, chat_template: str = "auto", dtype: str = "auto",
                 context_length: int = 0, kv_cache_tokens: int = 32768, max_num_seqs: int = 32,
                 defaults: Sampling | None = None):
        super().__init__()
        config = ModelConfig(model=model, chat_template=chat_template, dtype=dtype)
        self.tokenizer = load_tokenizer(config)
        if not self.tokenizer.is_fast:
            raise ApiError(500, "the transformers engine needs a fast (Rust) tokenizer for streaming")
        self.template = config.chat_template
        self.model = load_model(config, self.tokenizer).eval()
        self.model_id = model_id
        own_limit = getattr(self.model.config.get_text_config(), "max_position_embeddings", None) or 2048
        self.context_length = min(context_length or own_limit, own_limit)
        self.defaults = defaults or Sampling(None, 0.7, 0.95, 50)
        # a fixed KV budget rather than "what memory allows", which a shared machine cannot promise
        self.decoder = BatchedDecoder(self.model, max_num_seqs=max_num_seqs,
                                      kv_cache_tokens=max(kv_cache_tokens, self.context_length))

    async def stream(self, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int]) -> AsyncIterator[Step]:
        from tokenizers.decoders import DecodeStream

        request, events = submitted(self.decoder, prompt.ids, sampling, stop_ids, self.context_length)
        decoder = DecodeStream(skip_special_tokens=False)
        count = 0  # counted here: request.generated belongs to the worker thread and may already be ahead
        shown, sent = [], []  # token ids that are part of the reply, and the text streamed for them
        try:
            while True:
                token, finish, error = await events.get()
                if error is not None:
                    raise ApiError(500, f"generation failed: {error}", type="server_error")
                count += 1
                text = ""
                if token not in request.stop_ids:  # the end-of-turn token ends the reply; it is not shown
                    shown.append(token)
                    text = decoder.step(self.tokenizer._tokenizer, token) or ""
                    sent.append(text)
                if finish:  # DecodeStream holds back an unfinished character: the whole decode says what it is
                    whole, streamed = self.tokenizer.decode(shown), "".join(sent)
                    text += whole[len(streamed):] if whole.startswith(streamed) else ""
                if finish or text:
                    yield Step(text, count, finish)
                if finish:
                    return
        finally:
            self.decoder.cancel(request)  # a no-op when finished; frees the row when the client left early

    def close(self) -> None:
        self.decoder.close()
