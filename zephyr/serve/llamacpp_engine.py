"""llama.cpp (through llama-cpp-python) for GGUF files, behind zephyr's own OpenAI routes.

llama-cpp-python's `Llama` loads the GGUF and tokenizes; decoding runs in `LlamaCppBatcher`
(llamacpp_batched.py), which batches every live request into each `llama_decode` of one multi-sequence
context — llama-cpp-python's own server would serve one request at a time. The prompt is rendered by zephyr's
template and tokenized by llama.cpp with special tokens parsed, exactly as `transformers` tokenizes it. A
request's `seed` makes its sampling reproducible whatever else shares the batch, and its `grammar` (GBNF, as
llama.cpp's own server takes it) constrains the reply.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import AsyncIterator, Sequence

from ..chat_template import CHECKPOINT, JINJA
from ..errors import ConfigError
from ..sampling import Sampling
from .batched_decoder import stream_steps
from .engine import Engine, Prompt, Step
from .llamacpp_batched import Grammar, LlamaCppBatcher
from .protocol import ApiError


def template_in(metadata: dict[str, str], requested: str) -> str:
    """The requested template; for `auto` (and `checkpoint`) the one stored in the GGUF, by name, or zephyr for a
    GGUF that stores none. A stored template of another family is refused: this engine renders zephyr and
    chatml only, and serving with a template the model was not trained on answers wrongly."""
    if requested not in ("auto", CHECKPOINT):
        return requested
    stored = metadata.get("tokenizer.chat_template")
    if not stored and requested == "auto":
        return "zephyr"
    named = next((name for name, jinja in JINJA.items() if jinja == stored), None)
    if named is None:
        raise ConfigError("the GGUF carries a chat template of its own, which the llama.cpp engine cannot render "
                          "(it renders zephyr and chatml): serve the checkpoint folder with --engine transformers, "
                          "or pass --chat_template zephyr or chatml if the model was trained on one of them")
    return named


class DetokenizedText:
    """llama.cpp's bytes for each token, decoded incrementally so that a multi-byte character is never split."""

    def __init__(self, llm):
        self.llm = llm
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token: int) -> str:
        return self.decoder.decode(self.llm.detokenize([token]))

    def finish(self) -> str:
        return self.decoder.decode(b"", final=True)

    def token(self, token: int) -> str:
        return self.llm.detokenize([token]).decode("utf-8", "replace")


class LlamaCppEngine(Engine):
    name = "llama.cpp"
    supports_logprobs = True

    def __init__(self, model: str, model_id: str, chat_template: str = "auto", context_length: int = 0,
                 threads: int = 0, kv_cache_tokens: int = 32768, max_num_seqs: int = 16):
        from llama_cpp import Llama

        path = Path(model)
        if path.suffix != ".gguf" or not path.is_file():
            raise ApiError(500, f"llama.cpp serves .gguf files; {model} is not one")
        probe = Llama(model_path=str(path), vocab_only=True, verbose=False)  # metadata only, no weights
        self.metadata = dict(probe.metadata)
        probe.close()
        architecture = self.metadata.get("general.architecture", "")
        trained = int(self.metadata.get(f"{architecture}.context_length", 0)) or 2048
        self.context_length = min(context_length or trained, trained)
        # the weights and tokenizer; its own context stays small, the batcher makes the one that decodes
        self.llm = Llama(model_path=str(path), n_ctx=256, n_batch=256, verbose=False)
        self.batcher = LlamaCppBatcher(self.llm, kv_cache_tokens=max(kv_cache_tokens, self.context_length),
                                       max_num_seqs=max_num_seqs, threads=threads)
        self.model_id = model_id
        self.template = template_in(self.metadata, chat_template)
        self.add_bos = self.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true"

    @property
    def special_tokens(self) -> tuple[str, str]:
        def text(token: int) -> str:
            return self.llm.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

        return text(self.llm.token_bos()), text(self.llm.token_eos())

    def tokenize(self, text: str) -> list[int]:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = self.llm.token_bos()
        if self.add_bos and bos >= 0 and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    def token_id(self, text: str) -> int | None:
        if not text:
            return None
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 else None

    def grammar(self, text: str) -> Grammar:
        try:
            return self.batcher.grammar(text)
        except ValueError as err:
            raise ApiError(400, f"grammar: {err}", param="grammar") from err

    def stream(self, prompt: Prompt, sampling: Sampling, stop_ids: Sequence[int],
               top_logprobs: int | None = None, grammar: Grammar | None = None) -> AsyncIterator[Step]:
        if grammar is not None:  # a complete grammar allows only end-of-generation tokens: each of them ends it
            stop_ids = [*stop_ids, *self.batcher.end_of_generation_ids()]
        return stream_steps(self.batcher, prompt.ids, sampling, stop_ids, self.context_length,
                            DetokenizedText(self.llm), "llama.cpp failed", top_logprobs, grammar)

    def close(self) -> None:
        self.batcher.close()
        self.llm.close()
