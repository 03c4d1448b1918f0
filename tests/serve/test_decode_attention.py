"""The CPU decode path of the batched decoder (decode_attention.py): the same attention as transformers' SDPA
(to float rounding: which kernel torch picks depends on the CPU), and a KV cache that grows in place without
changing its contents."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from zephyr.serve.decode_attention import NAME, RUN_COST, SLACK, SlackLayer, attention, runs, use_decode_attention


class Attention(torch.nn.Module):  # the calling attention layer, as an attention function sees it
    def __init__(self, kv_groups: int = 2):
        super().__init__()
        self.num_key_value_groups = kv_groups
        self.eval()


def sdpa_reference(query, key, value, mask, scale):
    """Stock SDPA with one query per head, as transformers calls it for a grouped-query decode step."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale,
                                          enable_gqa=True).transpose(1, 2)


def decode_inputs(lengths, width, heads=4, kv_heads=2, dim=8, seed=0):
    """One-token step over right-aligned rows: row b's last lengths[b] columns are real, zeros on the left."""
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(len(lengths), heads, 1, dim, generator=g)
    key = torch.randn(len(lengths), kv_heads, width, dim, generator=g)
    value = torch.randn(len(lengths), kv_heads, width, dim, generator=g)
    mask = torch.arange(width)[None, :] >= (width - torch.tensor(lengths))[:, None]
    key[~mask[:, None, :, None].expand_as(key)] = 0
    value[~mask[:, None, :, None].expand_as(value)] = 0
    return query, key, value, mask[:, None, None, :]


def test_one_token_step_equals_sdpa():
    query, key, value, mask = decode_inputs([3, 12, 7], width=12)
    out, weights = attention(Attention(), query, key, value, mask, scaling=0.3)
    assert weights is None and out.shape == (3, 1, 4, 8)
    assert torch.allclose(out, sdpa_reference(query, key, value, mask, 0.3), atol=1e-6)
    # the same with no mask, and with transformers' additive float mask
    full, _ = attention(Attention(), query, key, value, None, scaling=0.3)
    assert torch.allclose(full, sdpa_reference(query, key, value, None, 0.3), atol=1e-6)
    assert not torch.allclose(full, out, atol=1e-3)  # the mask mattered
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    assert torch.allclose(attention(Attention(), query, key, value, additive, scaling=0.3)[0], out, atol=1e-6)


def test_rows_of_very_different_lengths_are_read_in_runs():
    lengths = [4] * 15 + [3000]  # the batched decoder's layout: short prompts sorted first, one long one
    query, key, value, mask = decode_inputs(lengths, width=3000, seed=5)
    assert runs(mask) == [(0, 15, 4), (15, 16, 3000)]  # 3,060 + 2 calls instead of 48,000 + 1
    out, _ = attention(Attention(), query, key, value, mask, scaling=0.3)
    assert torch.allclose(out, sdpa_reference(query, key, value, mask, 0.3), atol=1e-6)


def test_runs_by_hand():
    def mask(needed, width):
        return (torch.arange(width)[None, :] >= width - torch.tensor(needed)[:, None])[:, None, None, :]

    assert runs(mask([3, 5, 4], 10)) == [(0, 3, 5)]  # one call: splitting saves less than RUN_COST
    assert RUN_COST < 2000
    assert runs(mask([2, 2, 4000, 3, 1], 4000)) == [(0, 2, 2), (2, 3, 4000), (3, 5, 3)]
    nothing = mask([2, 2], 50)
    nothing[1] = False  # a row that attends nothing reads every column, as SDPA would
    assert runs(nothing) == [(0, 2, 50)]


def test_by_hand_one_head():
    # one row, one head, two keys: scores 0 and 1 * scale 1 -> weights (1, e) / (1 + e)
    query = torch.tensor([[[[1.0, 0.0]]]])
    key = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    value = torch.tensor([[[[2.0, 0.0], [0.0, 4.0]]]])
    out, _ = attention(Attention(), query, key, value, None, scaling=1.0)
    e = torch.e
    assert torch.allclose(out[0, 0, 0], torch.tensor([2 / (1 + e), 4 * e / (1 + e)]))


def test_sliding_window_reads_only_from_the_first_attended_column():
    window = 5
    query, key, value, mask = decode_inputs([3, 12, 9], width=12, seed=1)
    sliding = mask & (torch.arange(12) >= 12 - window)  # what transformers' sliding mask keeps
    out, _ = attention(Attention(), query, key, value, sliding, scaling=0.5, sliding_window=window)
    assert torch.allclose(out, sdpa_reference(query, key, value, sliding, 0.5), atol=1e-6)
    # a key before the window changed: not read (each run starts at its first attended column), so the result
    # cannot change
    key[:, :, 0] += 100.0
    assert torch.equal(attention(Attention(), query, key, value, sliding, scaling=0.5, sliding_window=window)[0], out)
    # a mask that attends before the window: those columns are read too
    wide = mask.clone()
    out, _ = attention(Attention(), query, key, value, wide, scaling=0.5, sliding_window=window)
    assert torch.allclose(out, sdpa_reference(query, key, value, wide, 0.5), atol=1e-6)


def test_longer_queries_go_to_transformers_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    g = torch.Generator().manual_seed(2)
    query, key, value = torch.randn(2, 4, 6, 8, generator=g), torch.randn(2, 2, 6, 8, generator=g), \
        torch.randn(2, 2, 6, 8, generator=g)
    module = Attention()
    ours, _ = attention(module, query, key, value, None, scaling=0.25)
    theirs, _ = sdpa_attention_forward(module, query, key, value, None, scaling=0.25)
    assert torch.equal(ours, theirs)


def test_slack_layer_appends_in_place_and_keeps_what_dynamic_layer_keeps():
    g = torch.Generator().manual_seed(3)
    ours, stock = SlackLayer(), DynamicLayer()
    prefill = torch.randn(2, 1, 5, 4, generator=g), torch.randn(2, 1, 5, 4, generator=g)
    for layer in (ours, stock):
        layer.update(*prefill)
    buffer = ours.keys.data_ptr()
    for _ in range(SLACK):  # every step fits in the room left after the prefill
        step = torch.randn(2, 1, 1, 4, generator=g), torch.randn(2, 1, 1, 4, generator=g)
        keys, values = ours.update(*step)
        expected = stock.update(*step)
        assert torch.equal(keys, expected[0]) and torch.equal(values, expected[1])
        assert keys.data_ptr() == buffer  # written in place
    step = torch.randn(2, 1, 1, 4, generator=g), torch.randn(2, 1, 1, 4, generator=g)
    keys, _ = ours.update(*step)  # room used up: a new buffer, contents carried over
    assert keys.data_ptr() != buffer and torch.equal(keys, stock.update(*step)[0])
    # the owner replaced the tensors (rows left): the next step starts from them, not from the old buffer
    ours.keys, ours.values = ours.keys[1:], ours.values[1:]
    stock.keys, stock.values = stock.keys[1:], stock.values[1:]
    step = torch.randn(1, 1, 1, 4, generator=g), torch.randn(1, 1, 1, 4, generator=g)
    assert all(torch.equal(a, b) for a, b in zip(ours.update(*step), stock.update(*step)))


@pytest.mark.parametrize("arch", ["mistral", "gemma3"])  # gemma3: sliding window 16, 4 heads on 2 KV heads
def test_model_decode_step_equals_sdpa(arch, tiny_model_dir):
    import inspect

    from transformers import AutoModelForCausalLM, DynamicCache

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch)).eval()
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    g = torch.Generator().manual_seed(4)
    lengths = torch.tensor([7, 30, 19])
    width = int(lengths.max())
    ids = torch.randint(4, 500, (3, width), generator=g)
    real = torch.arange(width)[None, :] >= (width - lengths)[:, None]
    positions = (torch.arange(width)[None, :] - (width - lengths)[:, None]).clamp(min=0)

    def steps(implementation):
        model.set_attn_implementation(implementation)
        cache, mask, out = DynamicCache(), real.long(), []
        if implementation == NAME:
            cache.layer_class_to_replicate = SlackLayer
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **{cache_name: cache},
                           logits_to_keep=1).logits[:, -1]
            for step in range(6):  # past the sliding window of 16 for the longest rows
                token = logits.argmax(-1, keepdim=True)
                out.append(logits)
                mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1)
                logits = model(input_ids=token, attention_mask=mask, position_ids=(lengths + step)[:, None],
                               **{cache_name: cache}).logits[:, -1]
        return torch.stack(out)

    stock = steps("sdpa")
    assert use_decode_attention(model) and model.config._attn_implementation == NAME
    assert torch.allclose(steps(NAME), stock, atol=1e-5)


def test_models_on_other_attention_are_left_alone(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("mistral"), attn_implementation="eager")
    assert not use_decode_attention(model)
    assert model.config._attn_implementation == "eager"
