"""Tiny models and tokenizers built from a config, for tests and benchmarks (no hub needed).

`tiny_checkpoint("mistral", folder)` writes a randomly initialised Mistral/Llama/Gemma3 causal LM with a
small byte-level BPE tokenizer (trained on the spot on a fixed text, or on the text given) that knows the
Zephyr special tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]

_CORPUS = """The quick brown fox jumps over the lazy dog. A user asks a question and the assistant answers it.
How do I bake bread? Mix flour, water, salt and yeast; knead, let it rise, then bake at 230 degrees.
Write a haiku about autumn leaves falling on a quiet river. Translate 'good morning' into French: bonjour.
Summarise the plot of a story in two sentences. What is 17 times 23? It is 391. Explain gravity simply.
Zephyr is a gentle west wind. Café, naïve, Grüße, 東京, こんにちは, emoji 🙂 are unicode text too.
system user assistant <|user|> <|assistant|> <|system|> im_start im_end
""" * 4


def tiny_tokenizer(vocab_size: int = 512, corpus: Iterable[str] | None = None):
    """A fast byte-level BPE tokenizer that, like Mistral's, puts <s> in front of encoded text. Trained on `corpus`
    when given (benchmarks: a full-size vocabulary whose tokens are as long as a real tokenizer's), else on a
    fixed paragraph (tests: a few hundred tokens, trained in milliseconds)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(_CORPUS.splitlines() if corpus is None else corpus, trainer=trainer)
    bos = core.token_to_id("<s>")
    core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                        special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", additional_special_tokens=["<|im_start|>", "<|im_end|>"])


def tiny_config(arch: str, vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2):
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig

    common = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=2048,
                  bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)
    if arch == "mistral":
        return MistralConfig(**common, sliding_window=None)
    if arch == "llama":
        return LlamaConfig(**common)
    if arch == "gemma3":
        # a short sliding window so that tests exercise Gemma 3's local layers
        return Gemma3TextConfig(**common, head_dim=hidden // heads, sliding_window=16,
                                layer_types=["sliding_attention", "full_attention"] * (layers // 2) +
                                ["sliding_attention"] * (layers % 2))
    raise ValueError(f"unknown tiny architecture {arch!r}; choose mistral, llama or gemma3")


def tiny_checkpoint(arch: str, folder: str | Path, hidden: int = 64, layers: int = 2, seed: int = 0,
                    vocab_size: int = 512, corpus: Iterable[str] | None = None) -> Path:
    """Write a tiny randomly initialised checkpoint (safetensors + tokenizer) and return its folder."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    tokenizer = tiny_tokenizer(vocab_size, corpus)
    config = tiny_config(arch, len(tokenizer), hidden=hidden, layers=layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
