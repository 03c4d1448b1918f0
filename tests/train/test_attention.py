"""Packed attention's kernels against the dense-mask reference on the CPU: FlexAttention's forward (it has no CPU
backward), the varlen path's index tensors through an oracle with flash-attention's semantics (forward and
backward), the kernel choice, and a training forward that converts no tensor to Python."""

import dataclasses
import types
import warnings

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.train.attention_oracles import VarlenOracle, dense_reference, real_tokens
from zephyr.train import attention
from zephyr.train.attention import Segments, kernel_for, packed_attention
from zephyr.train.packing import Tokenized, collate_rows, pack
from zephyr.train.scoring import TokenScorer
from zephyr.train.segment_attention import Piece

ROWS = {
    "packed": ([[Piece(0, 5), Piece(5, 12), Piece(12, 14, pad=True)], [Piece(0, 14)]], 14),
    # prompt 0..3 + chosen 4..8 as one piece; rejected 9..12 sees the prompt (keys 0..3), not the chosen
    "shared": ([[Piece(0, 9), Piece(9, 13, keys_from=0, keys_to=4), Piece(13, 16)],
                [Piece(0, 6), Piece(6, 10, keys_from=0, keys_to=3), Piece(10, 16, pad=True)]], 16),
}


def layer(groups: int):
    return types.SimpleNamespace(num_key_value_groups=groups, training=False)


def qkv(rows, length, heads, kv_heads, grad=False, dim=8):
    torch.manual_seed(0)
    return [torch.randn(len(rows), h, length, dim, requires_grad=grad) for h in (heads, kv_heads, kv_heads)]


@pytest.fixture(autouse=True)
def quiet_flex():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        yield


def test_segments_by_hand():
    rows, width = ROWS["shared"]
    seg = Segments.build(rows, width)
    assert seg.cu_q.tolist() == [0, 9, 13, 16, 22, 26, 32] and seg.cu_q.dtype == torch.int32
    assert seg.cu_k.tolist() == [0, 9, 17, 20, 26, 33, 39]  # rejected pieces gather their prompt first
    assert (seg.max_q, seg.max_k) == (9, 9) and isinstance(seg.max_k, int)
    assert seg.key_index[9:17].tolist() == [0, 1, 2, 3, 9, 10, 11, 12]
    assert seg.key_index[26:33].tolist() == [16, 17, 18, 22, 23, 24, 25]
    assert seg.piece_of[1].tolist() == [3] * 6 + [4] * 4 + [-1] * 6
    assert seg.prefix_to[0].tolist() == [0] * 9 + [4] * 4 + [0] * 3
    assert Segments.build(*ROWS["packed"]).key_index is None  # nothing to gather: keys are the queries
    with pytest.raises(ValueError, match="cover"):
        Segments.build([[Piece(0, 5), Piece(6, 14)]], 14)


@pytest.mark.parametrize("case", ["packed", "shared"])
@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (6, 2)])  # 6: not a power of two, keys repeated for flex
def test_flex_forward_equals_dense_mask(case, window, heads, kv_heads):
    rows, width = ROWS[case]
    q, k, v = qkv(rows, width, heads, kv_heads)
    seg = Segments.build(rows, width, kernel="flex")
    with torch.no_grad():
        got, _ = packed_attention(layer(heads // kv_heads), q, k, v, None, scaling=0.3, sliding_window=window,
                                  segments=seg)
    want = dense_reference(q, k, v, rows, window, 0.3)
    real = real_tokens(rows, width)
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
    assert got[~real].abs().sum() == 0  # padding sees nothing: zeros
    assert set(seg.block_masks) == {window}  # one block mask per window, kept for the other layers


def test_flex_forward_with_logit_softcap():
    rows, width = ROWS["shared"]
    q, k, v = qkv(rows, width, 4, 2)
    with torch.no_grad():
        got, _ = packed_attention(layer(2), q, k, v, None, scaling=0.3, softcap=2.0, sliding_window=4,
                                  segments=Segments.build(rows, width, kernel="flex"))
    real = real_tokens(rows, width)
    want = dense_reference(q, k, v, rows, 4, 0.3, softcap=2.0)
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
    plain = dense_reference(q, k, v, rows, 4, 0.3)
    assert (got[real] - plain[real]).abs().max() > 1e-3  # the cap does change the numbers


@pytest.mark.parametrize("case", ["packed", "shared"])
@pytest.mark.parametrize("window", [None, 3])
def test_varlen_indices_equal_dense_mask_forward_and_backward(case, window, monkeypatch):
    oracle = VarlenOracle()
    monkeypatch.setattr("torch.nn.attention.varlen.varlen_attn", oracle)
    rows, width = ROWS[case]
    q, k, v = qkv(rows, width, 4, 2, grad=True)
    got, _ = packed_attention(layer(2), q, k, v, None, scaling=0.3, sliding_window=window,
                              segments=Segments.build(rows, width, kernel="varlen"))
    want = dense_reference(q, k, v, rows, window, 0.3)
    real = real_tokens(rows, width)
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(got) * real[:, :, None, None]
    for g, e in zip(torch.autograd.grad((got * weights).sum(), (q, k, v)),
                    torch.autograd.grad((want * weights).sum(), (q, k, v))):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4)
    call, = oracle.calls
    assert type(call["max_q"]) is int and type(call["max_k"]) is int and call["cu_dtype"] == torch.int32
    assert call["window_size"] == ((-1, 0) if window is None else (window - 1, 0))


def test_kernel_choice():
    def query(device, dtype, dim=64):
        return types.SimpleNamespace(device=torch.device(device), dtype=dtype, shape=(1, 2, 3, dim))

    assert kernel_for(query("cpu", torch.bfloat16), None) == "segments"
    assert kernel_for(query("cuda", torch.bfloat16), None) == "varlen"
    assert kernel_for(query("cuda", torch.float16), None) == "varlen"
    assert kernel_for(query("cuda", torch.float32), None) == "flex"  # flash kernels take half precision only
    assert kernel_for(query("cuda", torch.bfloat16), 50.0) == "flex"  # Gemma 2's attention soft-cap
    assert kernel_for(query("cuda", torch.bfloat16, dim=512), None) == "flex"
    assert kernel_for(query("cpu", torch.float32), None, requested="flex") == "flex"
    with pytest.raises(ValueError, match="unknown attention kernel"):
        Segments.build(*ROWS["packed"], kernel="flash")


def _conversations(vocab: int, n: int, seed: int) -> list[Tokenized]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(5, 40, (1,), generator=g))  # several exceed gemma3-tiny's window of 16
        ids = [1] + torch.randint(4, vocab, (length - 1,), generator=g).tolist()
        cut = int(torch.randint(1, length - 1, (1,), generator=g))
        out.append(Tokenized(ids, [0] * cut + [1] * (length - cut)))
    return out


def _packed_batch(model, n=9, seed=1):
    examples = _conversations(model.config.vocab_size, n, seed)
    rows = pack(examples, 64)
    assert any(len(r) > 1 for r in rows)
    return collate_rows(rows, examples, pad_id=0)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_every_kernel_gives_the_same_log_probs_through_the_model(arch, tiny_model_dir, monkeypatch):
    """The whole wiring (collate -> scorer -> transformers -> kernel), sliding layers included for Gemma 3."""
    monkeypatch.setattr("torch.nn.attention.varlen.varlen_attn", VarlenOracle())
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch), dtype=torch.float32, attn_implementation="sdpa")
    scorer = TokenScorer(model, chunk_size=7)
    batch = _packed_batch(model)
    results = {}
    with torch.no_grad():
        for kernel in ("segments", "varlen", "flex"):
            segments = dataclasses.replace(batch["segments"], kernel=kernel)
            results[kernel], _ = scorer(batch["input_ids"], batch["position_ids"], batch["target_index"],
                                        batch["target_ids"], segments=segments)
    torch.testing.assert_close(results["varlen"], results["segments"], atol=1e-4, rtol=0)
    torch.testing.assert_close(results["flex"], results["segments"], atol=1e-4, rtol=0)


class PythonConversions:
    """Counts tensors turned into Python values (item, tolist, float, int, bool, index) while armed."""

    NAMES = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")

    def __init__(self, monkeypatch):
        self.calls, self.armed = [], False
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _name=name, _original=original, **kwargs):
                if self.armed:
                    self.calls.append(_name)
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize("kernel", ["auto", "varlen"])
def test_sft_training_forward_reads_nothing_back(kernel, tiny_model_dir, monkeypatch):
    from zephyr.sft.loss import sft_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("gemma3"), dtype=torch.float32,
                                                 attn_implementation="sdpa")
    model.train()
    scorer = TokenScorer(model, chunk_size=16)
    batch = _packed_batch(model)
    batch["segments"] = dataclasses.replace(batch["segments"], kernel=kernel)
    oracle = VarlenOracle()
    monkeypatch.setattr("torch.nn.attention.varlen.varlen_attn", oracle)
    counter = PythonConversions(monkeypatch)
    counter.armed = True
    loss, n, _ = sft_loss(scorer, batch)
    counter.armed = False
    assert counter.calls == []
    assert len(oracle.calls) == (model.config.num_hidden_layers if kernel == "varlen" else 0)
    loss.backward()
    # the counter does count: the position-id fallback (no collate-time segments) reads the ids back
    counter.armed = True
    scorer(batch["input_ids"], batch["position_ids"], batch["target_index"], batch["target_ids"])
    assert "tolist" in counter.calls


def test_dpo_training_forward_reads_nothing_back(tiny_model_dir, tokenizer, monkeypatch):
    from zephyr.dpo.layout import collate, completion_logps
    from zephyr.dpo.tokenize import TokenizedPair

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("gemma3"), dtype=torch.float32,
                                                 attn_implementation="sdpa")
    model.train()
    scorer = TokenScorer(model)
    g = torch.Generator().manual_seed(0)

    def ids(n):
        return torch.randint(4, model.config.vocab_size, (n,), generator=g).tolist()

    pairs = [TokenizedPair(prompt=ids(7 + i), chosen=ids(5 + 2 * i), rejected=ids(9 - i), index=i) for i in range(3)]
    batch = collate(pairs, "shared")
    counter = PythonConversions(monkeypatch)
    counter.armed = True
    scores = completion_logps(scorer, batch)
    counter.armed = False
    assert counter.calls == []
    scores.logps.sum().backward()
