"""Segment attention equals sdpa under the equivalent dense mask (values and gradients), and leaves every call
without `segments=` to transformers' sdpa."""

import types

import torch
import torch.nn.functional as F

from zephyr.train import attention
from tests.train.attention_oracles import dense_mask
from zephyr.train.segment_attention import Piece, segment_attention as attend


def module(groups: int):
    return types.SimpleNamespace(num_key_value_groups=groups, training=False)


def check(rows, length, heads=4, kv_heads=2, window=None):
    torch.manual_seed(0)
    q = torch.randn(len(rows), heads, length, 8, requires_grad=True)
    k = torch.randn(len(rows), kv_heads, length, 8, requires_grad=True)
    v = torch.randn(len(rows), kv_heads, length, 8, requires_grad=True)
    got, _ = attend(module(heads // kv_heads), q, k, v, rows, scaling=0.3, sliding_window=window)
    rep = heads // kv_heads
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                          attn_mask=dense_mask(rows, length, window), scale=0.3).transpose(1, 2)
    real = torch.zeros(len(rows), length, dtype=torch.bool)
    for r, pieces in enumerate(rows):
        for p in pieces:
            real[r, p.start:p.end] = not p.pad
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
    assert got[~real].abs().sum() == 0  # padding outputs are zeros
    weights = torch.randn_like(got) * real[:, :, None, None]
    grads = torch.autograd.grad((got * weights).sum(), (q, k, v))
    expected = torch.autograd.grad((want * weights).sum(), (q, k, v))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4)


def test_packed_sequences_and_padding():
    check([[Piece(0, 5), Piece(5, 12), Piece(12, 14, pad=True)], [Piece(0, 14)]], 14)


def test_shared_prompt_branch():
    # prompt 0..3 + chosen 4..8 as one piece; rejected 9..12 sees the prompt (keys 0..3), not the chosen
    check([[Piece(0, 9), Piece(9, 13, keys_from=0, keys_to=4), Piece(13, 16)]], 16)


def test_sliding_window_inside_pieces():
    check([[Piece(0, 9), Piece(9, 15, keys_from=0, keys_to=4), Piece(15, 18, pad=True)]], 18, window=3)


def test_without_segments_it_is_sdpa():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool).tril()
    got, _ = attention.packed_attention(module(1), q, k, v, mask, scaling=0.5)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.5).transpose(1, 2)
    torch.testing.assert_close(got, want)


def test_install_switches_sdpa_only(tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    sdpa = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), attn_implementation="sdpa")
    eager = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), attn_implementation="eager")
    ids = torch.tensor([tokenizer.encode("hello there, how are you")])
    before = sdpa.generate(ids, max_new_tokens=6, do_sample=False)
    assert attention.install(sdpa.config) and not attention.install(eager.config)
    assert sdpa.config._attn_implementation == attention.NAME
    assert eager.config._attn_implementation == "eager"
    # ordinary calls (generation with a KV cache) are unchanged
    torch.testing.assert_close(sdpa.generate(ids, max_new_tokens=6, do_sample=False), before)
