"""Perplexity on a held-out text, the same token windows for every backend, so numbers compare directly.

The text is cut into windows of `window` tokens, each starting with BOS (Gemma and Mistral expect one);
perplexity = exp(mean negative log-likelihood of every token after the first in each window). The
transformers and llama.cpp versions score identical ids, so a quantized GGUF and its unquantized source
differ only by the weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .chat_template import CHECKPOINT, render_text, render_with_tokenizer
from .data.io import read_objects
from .errors import DataError

DEMO_HELDOUT = Path(__file__).parent / "demo_data" / "sft_test.jsonl"  # never trained on by the demo recipe


def load_eval_text(path: str | Path | None, template: str, eos_token: str, tokenizer=None) -> str:
    """Plain text (.txt) or conversations (.jsonl with 'messages') rendered with the chat template (`tokenizer`:
    the one whose own template `checkpoint` names)."""
    path = Path(path) if path else DEMO_HELDOUT
    if not path.exists():
        raise DataError("held-out text not found", str(path))
    if path.suffix != ".jsonl":
        return path.read_text()
    return "".join(conversation_texts(path, template, eos_token, tokenizer))


def conversation_texts(path: Path, template: str, eos_token: str, tokenizer=None) -> list[str]:
    """Each row's 'messages' rendered with the chat template, in file order; `checkpoint` renders through
    `tokenizer`'s own template."""
    if template == CHECKPOINT and tokenizer is None:
        raise ValueError("the checkpoint's own chat template needs its tokenizer")
    texts = []
    for where, row in read_objects(path):
        if not isinstance(row.get("messages"), list):
            raise where.error("expected a 'messages' list", "messages")
        if template == CHECKPOINT:
            texts.append(render_with_tokenizer(row["messages"], tokenizer).text)
        else:
            texts.append(render_text(row["messages"], template, "", eos_token).text)
    return texts


def windows(ids: Sequence[int], window: int, bos_id: int | None, max_tokens: int) -> list[list[int]]:
    """Non-overlapping windows of at most `window` tokens (BOS included), covering up to `max_tokens` ids."""
    body = [i for i in ids if i != bos_id][:max_tokens]
    step = window - (bos_id is not None)
    prefix = [bos_id] if bos_id is not None else []
    chunks = [prefix + body[i:i + step] for i in range(0, len(body), step)]
    return [c for c in chunks if len(c) > 1]  # a window needs a token to predict from


def nll_sum(logits: np.ndarray, ids: Sequence[int]) -> float:
    """Sum of -log p(ids[t+1] | ids[:t+1]) from per-position logits of shape (len(ids), vocab)."""
    logits = np.asarray(logits[: len(ids) - 1], dtype=np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
    targets = np.asarray(ids[1:])
    return float((log_z - logits[np.arange(len(targets)), targets]).sum())


def perplexity_from(total_nll: float, count: int) -> float:
    return math.exp(total_nll / count)


def hf_perplexity(model, chunks: list[list[int]]) -> float:
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in chunks:
            logits = model(torch.tensor([chunk])).logits[0].float().numpy()
            total += nll_sum(logits, chunk)
            count += len(chunk) - 1
    return perplexity_from(total, count)


def llama_cpp_perplexity(llm, chunks: list[list[int]]) -> float:
    """`llm` is a llama_cpp.Llama built with logits_all=True and n_ctx >= the window."""
    total, count = 0.0, 0
    for chunk in chunks:
        llm.reset()
        llm.eval(chunk)
        total += nll_sum(llm.scores[: len(chunk)], chunk)
        count += len(chunk) - 1
    return perplexity_from(total, count)
