"""Chunked lm_head log-probs equal the full-logits reference, values and gradients, with and without soft-capping."""

from __future__ import annotations

import math

import pytest
import torch

from zephyr.train.chunked_lm_head import token_logps, token_logps_checkpointed


def _reference(hidden, weight, targets, softcap=None):
    logits = (hidden @ weight.T).float()
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    return torch.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1), logits.mean(-1)


def test_hand_computed_two_token_vocab():
    # logits [0, ln 3] -> p = [1/4, 3/4]; target 1 -> log(3/4); mean logit ln(3)/2
    hidden = torch.tensor([[1.0]])
    weight = torch.tensor([[0.0], [math.log(3.0)]])
    logps, means = token_logps(hidden, weight, torch.tensor([1]), chunk_size=1)
    assert logps.item() == pytest.approx(math.log(0.75), abs=1e-6)
    assert means.item() == pytest.approx(math.log(3.0) / 2, abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_fused_matches_full_logits_values_and_grads(softcap, chunk, dtype):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(13, 8, generator=g, dtype=dtype)
    weight = torch.randn(50, 8, generator=g, dtype=dtype)
    targets = torch.randint(0, 50, (13,), generator=g)
    upstream = torch.randn(13, generator=g, dtype=dtype)
    h1, w1 = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    h2, w2 = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    ours, our_means = token_logps(h1, w1, targets, chunk_size=chunk, softcap=softcap)
    ref, ref_means = _reference(h2, w2, targets, softcap)
    torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(our_means, ref_means.float(), atol=1e-5, rtol=0)
    (ours.to(dtype) * upstream).sum().backward()
    (ref.to(dtype) * upstream).sum().backward()
    torch.testing.assert_close(h1.grad, h2.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(w1.grad, w2.grad, atol=1e-5, rtol=0)


def test_cpu_scratch_is_reused_across_calls_and_chunk_sizes():
    """A bf16 head (a LoRA or frozen-embedding run's) computes in the same CPU memory call after call, and a
    smaller call after a larger one still reads only its own logits."""
    from zephyr.train import chunked_lm_head

    g = torch.Generator().manual_seed(2)
    # quarters in [-0.75, 1]: every product and sum is exact in fp32, so the bf16 logits round the same way
    # whatever order a CPU's bf16 kernel accumulates in
    weight = (torch.randint(-3, 5, (40, 8), generator=g) / 4).bfloat16()
    pointers = []
    for n in (9, 3):
        hidden = (torch.randint(-3, 5, (n, 8), generator=g) / 4).bfloat16().requires_grad_()
        targets = torch.randint(0, 40, (n,), generator=g)
        ours, _ = token_logps(hidden, weight, targets, chunk_size=4)
        pointers.append({dtype: chunked_lm_head._SCRATCH[dtype, torch.device("cpu")].data_ptr()
                         for dtype in (torch.float32, torch.bfloat16)})
        reference = hidden.detach().clone().requires_grad_()
        ref, _ = _reference(reference, weight, targets)
        torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=0)
        ours.sum().backward()
        ref.sum().backward()
        torch.testing.assert_close(hidden.grad.float(), reference.grad.float(), atol=2e-2, rtol=2e-2)
    assert pointers[0] == pointers[1]


def test_frozen_head_only_hidden_grad():
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(6, 4, generator=g).requires_grad_()
    weight = torch.randn(20, 4, generator=g)  # frozen, like a LoRA run's tied embedding
    targets = torch.randint(0, 20, (6,), generator=g)
    token_logps(hidden, weight, targets, chunk_size=4)[0].sum().backward()
    reference = hidden.detach().clone().requires_grad_()
    _reference(reference, weight, targets)[0].sum().backward()
    torch.testing.assert_close(hidden.grad, reference.grad, atol=1e-5, rtol=0)


def test_checkpointed_module_path_matches():
    g = torch.Generator().manual_seed(2)
    head = torch.nn.Linear(8, 30, bias=False)
    hidden = torch.randn(11, 8, generator=g).requires_grad_()
    targets = torch.randint(0, 30, (11,), generator=g)
    ours, _ = token_logps_checkpointed(hidden, head, targets, chunk_size=4)
    ours.sum().backward()
    ours_grads = hidden.grad.clone(), head.weight.grad.clone()
    hidden.grad, head.weight.grad = None, None
    ref, _ = _reference(hidden, head.weight, targets)
    ref.sum().backward()
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_grads[0], hidden.grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_grads[1], head.weight.grad, atol=1e-5, rtol=0)

