"""Check a quantized model on write: reload it in its target engine, generate, and compare perplexity.

The reference is the unquantized checkpoint in float32 under transformers, scored on the very same token
windows, so the table's delta measures the quantisation and nothing else.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from pathlib import Path

from ..perplexity import hf_perplexity, llama_cpp_perplexity, load_eval_text, windows

SAMPLE_QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@dataclasses.dataclass
class EvalSet:
    chunks: list[list[int]]
    description: str
    tokens: int


def eval_set(tokenizer, template: str, eval_text: str | None, window: int, max_tokens: int) -> EvalSet:
    text = load_eval_text(eval_text, template, tokenizer.eos_token or "", tokenizer)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    chunks = windows(ids, window, tokenizer.bos_token_id, max_tokens)
    tokens = sum(len(c) - 1 for c in chunks)
    where = Path(eval_text).name if eval_text else "zephyr/demo_data/sft_test.jsonl (held out from training)"
    return EvalSet(chunks, f"{where}, {tokens} tokens in windows of {window}", tokens)


def reference_perplexity(model_dir: str | Path, template: str, evaluation: EvalSet) -> float:
    from ..models import ModelConfig, load_model, load_tokenizer

    config = ModelConfig(model=str(model_dir), chat_template=template, dtype="float32")
    model = load_model(config, load_tokenizer(config)).eval()
    return hf_perplexity(model, evaluation.chunks)


def check_gguf(path: Path, evaluation: EvalSet, threads: int = 0) -> tuple[float, str]:
    """-> (perplexity, a greedy reply to a sample question using the chat template stored in the file)."""
    from llama_cpp import Llama

    window = max(len(c) for c in evaluation.chunks)
    llm = Llama(model_path=str(path), n_ctx=max(window, 512), logits_all=True, verbose=False,
                n_threads=threads or None)
    try:
        reply = llm.create_chat_completion(SAMPLE_QUESTION, max_tokens=24, temperature=0.0)
        sample = reply["choices"][0]["message"]["content"] or ""
        perplexity = llama_cpp_perplexity(llm, evaluation.chunks)
    finally:
        llm.close()
    return perplexity, sample


def row(version: str, path: Path, perplexity: float, reference: float, engine: str) -> dict:
    return {"version": version, "file": path.name, "size_mb": path.stat().st_size / 2**20 if path.is_file()
            else sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20,
            "perplexity": perplexity, "reference_perplexity": reference,
            "delta_percent": 100.0 * (perplexity / reference - 1.0), "engine": engine}


def engine_label(package: str, name: str) -> str:
    try:
        return f"{name} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return name
