"""Packed attention's CUDA kernels against the dense-mask reference, forward and backward, and a training step
on CUDA that never waits for the GPU. Skipped without CUDA (CI has none); run them on a GPU machine with
`pytest tests/gpu`."""

import dataclasses
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.train.attention_oracles import dense_reference, real_tokens
from tests.train.test_attention import ROWS, _packed_batch, layer
from zephyr.train.attention import Segments, packed_attention, varlen_available
from zephyr.train.scoring import TokenScorer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CASES = [(case, window, heads, kv) for case in ROWS for window in (None, 3) for heads, kv in ((4, 2), (4, 4))]


def _inputs(rows, width, heads, kv_heads, dtype, dim=64):
    torch.manual_seed(0)
    return [torch.randn(len(rows), h, width, dim, device="cuda", dtype=dtype, requires_grad=True)
            for h in (heads, kv_heads, kv_heads)]


def _compare(kernel, case, window, heads, kv_heads, dtype, atol):
    rows, width = ROWS[case]
    q, k, v = _inputs(rows, width, heads, kv_heads, dtype)
    seg = Segments.build(rows, width, kernel=kernel).to("cuda")
    got, _ = packed_attention(layer(heads // kv_heads), q, k, v, None, scaling=0.125, sliding_window=window,
                              segments=seg)
    # the reference in fp32 from the same (rounded) inputs
    ref_in = [t.detach().float().requires_grad_() for t in (q, k, v)]
    want = dense_reference(*ref_in, rows, window, 0.125)
    real = real_tokens(rows, width).cuda()
    torch.testing.assert_close(got[real].float(), want[real], atol=atol, rtol=0)
    weights = torch.randn_like(want) * real[:, :, None, None]
    grads = torch.autograd.grad((got.float() * weights).sum(), (q, k, v))
    expected = torch.autograd.grad((want * weights).sum(), ref_in)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g.float(), e, atol=4 * atol, rtol=0)


@pytest.mark.skipif(not varlen_available(), reason="this PyTorch's varlen_attn lacks window_size/enable_gqa")
@pytest.mark.parametrize("case,window,heads,kv_heads", CASES)
def test_varlen_forward_and_backward_equal_dense_mask(case, window, heads, kv_heads):
    _compare("varlen", case, window, heads, kv_heads, torch.bfloat16, atol=2e-2)


@pytest.mark.parametrize("case,window,heads,kv_heads", CASES)
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
def test_flex_forward_and_backward_equal_dense_mask(case, window, heads, kv_heads, dtype, atol):
    _compare("flex", case, window, heads, kv_heads, dtype, atol)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_auto_kernel_equals_segment_loop_through_the_model(arch, tiny_model_dir):
    """bf16 autocast over fp32 weights, as training runs: the chosen kernel vs the per-piece loop, log-probs and
    gradients."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch), dtype=torch.float32,
                                                 attn_implementation="sdpa").cuda()
    model.train()
    scorer = TokenScorer(model, chunk_size=16)
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in _packed_batch(model).items()}
    results = {}
    for kernel in ("segments", "auto"):
        model.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logps, _ = scorer(batch["input_ids"], batch["position_ids"], batch["target_index"], batch["target_ids"],
                              segments=dataclasses.replace(batch["segments"], kernel=kernel))
        logps.sum().backward()
        results[kernel] = (logps.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(results["auto"][0], results["segments"][0], atol=5e-2, rtol=0)
    for name, grad in results["segments"][1].items():
        torch.testing.assert_close(results["auto"][1][name], grad, atol=5e-2, rtol=5e-2)


def test_training_step_never_waits_for_the_gpu(tiny_model_dir):
    """CUDA's sync debug mode raises on any host synchronisation: the forward and backward of an SFT step (the
    chosen kernel, collate-time segments) must run without one."""
    from zephyr.sft.loss import sft_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("gemma3"), dtype=torch.float32,
                                                 attn_implementation="sdpa").cuda()
    model.train()
    scorer = TokenScorer(model, chunk_size=16)
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in _packed_batch(model).items()}
    for sync_mode in ("default", "error"):  # the first step warms the kernels and allocator up
        torch.cuda.set_sync_debug_mode(sync_mode)
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16), warnings.catch_warnings():
                loss, _, _ = sft_loss(scorer, batch)
                loss.backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_dpo_forward_never_waits_for_the_gpu(tiny_model_dir):
    """The DPO policy's scoring of a shared-prompt batch, moved to the GPU inside the checked region."""
    from zephyr.dpo.layout import collate, completion_logps
    from zephyr.dpo.tokenize import TokenizedPair

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("gemma3"), dtype=torch.float32,
                                                 attn_implementation="sdpa").cuda()
    model.train()
    scorer = TokenScorer(model)
    g = torch.Generator().manual_seed(0)

    def ids(n):
        return torch.randint(4, model.config.vocab_size, (n,), generator=g).tolist()

    pairs = [TokenizedPair(prompt=ids(7 + i), chosen=ids(5 + 2 * i), rejected=ids(9 - i), index=i) for i in range(3)]
    batch = collate(pairs, "shared")
    for sync_mode in ("default", "error"):
        torch.cuda.set_sync_debug_mode(sync_mode)
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                scores = completion_logps(scorer, batch.to("cuda"))
                scores.logps.sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
