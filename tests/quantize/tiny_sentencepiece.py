"""Tiny Llama/Mistral checkpoints with a real sentencepiece tokenizer (tokenizer.model), as Llama 2 and
Mistral 7B ship: the sentencepiece model is trained on the spot on a few lines of text, so no hub is needed.

Weights are random but drawn wider than the default initialisation, so that the next-token logits have
clear gaps and a greedy choice is not a near-tie that float16 rounding could flip.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tests.fixtures.tiny import _CORPUS, tiny_config


def sentencepiece_tokenizer(folder: Path, vocab_size: int = 400):
    """Llama's layout: <unk>=0, <s>=1, </s>=2, BPE pieces with byte fallback, <s> put in front of text."""
    import sentencepiece
    from transformers import LlamaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "corpus.txt"
    text.write_text(_CORPUS)
    sentencepiece.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    text.unlink()
    (folder / "tokenizer.vocab").unlink()
    return LlamaTokenizer.from_pretrained(folder, legacy=False, add_bos_token=True)


def tiny_sentencepiece_checkpoint(arch: str, folder: str | Path, hidden: int = 64, seed: int = 0) -> Path:
    """A 2-layer `arch` ("llama" or "mistral") checkpoint with tokenizer.model beside its tokenizer files."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if (folder / "model.safetensors").exists():
        return folder  # made earlier in this test run
    tokenizer = sentencepiece_tokenizer(folder)
    config = tiny_config(arch, len(tokenizer), hidden=hidden)
    config.pad_token_id = None  # sentencepiece Llama tokenizers have no pad token
    config.initializer_range = 0.3
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
