"""The serve engines' draw from a distribution and nucleus's no-cut path (UltraFeedback's sampling: top-k off,
top-p 1), checked against exact probabilities."""

from __future__ import annotations

import torch

from zephyr.serve.batched_decoder import draw, nucleus


def test_draw_follows_the_probabilities():
    probs = torch.tensor([0.5, 0.0, 0.2, 0.3, 0.0])
    generator = torch.Generator().manual_seed(0)
    n = 20000
    counts = torch.bincount(torch.tensor([draw(probs, generator) for _ in range(n)]), minlength=5)
    assert counts[1] == counts[4] == 0  # a zero-probability token is never drawn, last one included
    # 4 standard deviations of a binomial count at most
    for p, c in zip(probs.tolist(), counts.tolist()):
        assert abs(c - n * p) <= 4 * (n * p * (1 - p)) ** 0.5 + 1e-9


def test_draw_takes_unnormalised_weights_and_the_generator():
    weights = torch.tensor([1.0, 3.0])  # 1/4, 3/4
    one, two = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    first = [draw(weights, one) for _ in range(50)]
    assert first == [draw(weights, two) for _ in range(50)]  # same seed, same draws
    assert 0 < sum(first) < 50


def test_nucleus_without_cuts_is_the_softmax_unsorted():
    logits = torch.tensor([1.0, 3.0, -2.0, 0.5])
    probs, ids = nucleus(logits, 0.5, 0, 1.0)
    expected = torch.exp(logits / 0.5) / torch.exp(logits / 0.5).sum()
    assert ids.tolist() == [0, 1, 2, 3]
    assert torch.allclose(probs, expected)
    # the same distribution as a cut that keeps everything (sorted, largest first)
    cut_probs, cut_ids = nucleus(logits, 0.5, 3, 1.0)
    assert cut_ids.tolist() == [1, 0, 3]
    assert torch.allclose(cut_probs, expected[[1, 0, 3]] / expected[[1, 0, 3]].sum())
