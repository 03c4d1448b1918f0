"""Packing: best-fit decreasing bins, collation layout, and no cross-contamination inside a packed row."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from zephyr.train.scoring import TokenScorer, decoder_hidden
from zephyr.train.packing import PackStats, Tokenized, best_fit_decreasing, collate_rows, pack, truncate


def test_best_fit_decreasing_hand_example():
    # capacity 10: 7 opens bin0, 6 bin1, 4 -> bin1 (fullest that fits: 4 left), 3 -> bin0, 2 -> bin2 ... by hand
    bins = best_fit_decreasing([3, 7, 4, 6, 2, 1], 10)
    assert bins == [[1, 0], [3, 2], [4, 5]]
    assert sorted(i for b in bins for i in b) == list(range(6))


def test_an_oversized_item_is_refused_or_gets_a_bin_of_its_own():
    with pytest.raises(ValueError, match="capacity"):
        best_fit_decreasing([12, 3, 5], 10)
    assert best_fit_decreasing([12, 3, 5], 10, oversized_alone=True) == [[0], [2, 1]]


def test_best_fit_never_overflows_and_is_nearly_full():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 300, (500,), generator=g).tolist()
    bins = best_fit_decreasing(lengths, 512)
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    assert sorted(i for b in bins for i in b) == list(range(500))
    lower_bound = -(-sum(lengths) // 512)
    assert len(bins) <= lower_bound + 2  # within two rows of a perfect packing


def test_truncate_counts_and_drops():
    stats = PackStats()
    examples = [Tokenized([1, 2, 3], [0, 0, 1]),                    # fits
                Tokenized([1, 2, 3, 4, 5, 6], [0, 1, 0, 0, 1, 1]),  # cut to 4, still has a target
                Tokenized([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 1, 1])]  # cut to 4: no target left -> dropped
    kept = truncate(examples, 4, stats)
    assert [e.ids for e in kept] == [[1, 2, 3], [1, 2, 3, 4]]
    assert (stats.conversations, stats.truncated, stats.dropped_no_target) == (3, 2, 1)


def test_collate_rows_layout_by_hand():
    examples = [Tokenized([10, 11, 12], [0, 1, 1]), Tokenized([20, 21], [0, 1]), Tokenized([30, 31, 32, 33], [0, 0, 1, 1])]
    batch = collate_rows([[0, 1], [2]], examples, pad_id=0)
    assert batch["input_ids"].tolist() == [[10, 11, 12, 20, 21], [30, 31, 32, 33, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    # targets 11, 12 (predicted at 0, 1), 21 (at 3), 32, 33 (at row 1: 5 + 1, 5 + 2)
    assert batch["target_index"].tolist() == [0, 1, 3, 6, 7]
    assert batch["target_ids"].tolist() == [11, 12, 21, 32, 33]
    assert batch["target_seq"].tolist() == [0, 0, 1, 2, 2]
    assert (batch["n_targets"], batch["n_tokens"], batch["n_seqs"]) == (5, 9, 3)
    flat = collate_rows([[0, 1], [2]], examples, pad_id=0, flat=True)
    assert flat["input_ids"].tolist() == [[10, 11, 12, 20, 21, 30, 31, 32, 33]]
    assert flat["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    assert flat["target_index"].tolist() == [0, 1, 3, 6, 7]


def _conversations(vocab: int, n: int, seed: int) -> list[Tokenized]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(5, 40, (1,), generator=g))  # several exceed gemma3-tiny's sliding window of 16
        ids = [1] + torch.randint(4, vocab, (length - 1,), generator=g).tolist()
        cut = int(torch.randint(1, length - 1, (1,), generator=g))
        out.append(Tokenized(ids, [0] * cut + [1] * (length - cut)))
    return out


def _one_by_one(model, examples, scorer):
    sums = []
    for ex in examples:
        b = collate_rows([[0]], [ex], pad_id=0)
        logps, _ = scorer(b["input_ids"], b["position_ids"], b["target_index"], b["target_ids"])
        sums.append(logps.sum())
    return torch.stack(sums)


@pytest.mark.parametrize("arch", ["mistral", "llama", "gemma3"])
@pytest.mark.parametrize("attn,flat", [("sdpa", False), ("eager", False), ("sdpa", True)])
def test_packed_logps_equal_one_by_one(arch, attn, flat, tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch), dtype=torch.float32, attn_implementation=attn)
    model.eval()  # eval mode leaves use_cache on by default: the guard must still isolate rows
    scorer = TokenScorer(model, chunk_size=7)
    examples = _conversations(model.config.vocab_size, 9, seed=1)
    rows = pack(examples, 64)
    assert any(len(r) > 1 for r in rows) and any(len(examples[r[-1]]) > 16 for r in rows if len(r) > 1)
    with torch.no_grad():
        batch = collate_rows(rows, examples, pad_id=0, flat=flat)
        logps, _ = scorer(batch["input_ids"], batch["position_ids"], batch["target_index"], batch["target_ids"])
        packed = torch.zeros(batch["n_seqs"]).index_add(0, batch["target_seq"], logps)
        order = [e for r in rows for e in r]
        single = _one_by_one(model, [examples[e] for e in order], scorer)
    torch.testing.assert_close(packed, single, atol=1e-4, rtol=0)


def test_all_ones_mask_would_leak_so_the_guard_refuses_it(tiny_model_dir):
    """The failure the guard exists for: with a mask, a packed row attends as one sequence."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("mistral"), dtype=torch.float32)
    examples = _conversations(model.config.vocab_size, 2, seed=3)
    batch = collate_rows([[0, 1]], examples, pad_id=0)
    with torch.no_grad():
        isolated = decoder_hidden(model, batch["input_ids"], batch["position_ids"])
        leaky = model.model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                            attention_mask=torch.ones_like(batch["input_ids"])).last_hidden_state
    second = slice(len(examples[0]), None)
    assert (isolated[0, second] - leaky[0, second]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="attention_mask=None"):
        decoder_hidden(model, batch["input_ids"], batch["position_ids"], torch.ones_like(batch["input_ids"]))
