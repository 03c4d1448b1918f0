"""Each speed-up changes no number: packed and shared-prompt layouts (segment attention under sdpa, a dense
mask under eager) and chunked log-probs give the metrics
(and gradients) of the plain path - TRL's padded rows through the model's own forward and full logits - to 1e-4
in fp32, on Mistral, Llama and Gemma 3 (whose 16-token sliding window the sequences here exceed)."""

import copy
import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM

from zephyr.dpo.layout import SequenceScores, collate, completion_logps
from zephyr.dpo.loss_metrics import metric_sums, pair_outputs
from zephyr.dpo.losses import LossConfig
from zephyr.dpo.losses import PairLogps
from zephyr.dpo.reference import reference_logps
from zephyr.dpo.tokenize import tokenize_pairs
from zephyr.train.scoring import TokenScorer

ARCHS = ["mistral", "llama", "gemma3"]


def models(folder, impl="sdpa"):
    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=impl, dtype=torch.float32)
    ref = copy.deepcopy(policy)
    with torch.no_grad():  # a policy that differs from its reference, so rewards are not all zero
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return policy, ref


def score_full_logits(model, batch) -> SequenceScores:
    """The plain path: the model's own forward and full logits, log-softmax, gather."""
    logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False,
                   **batch.attention_kwargs(model)).logits.float()
    picked = logits[batch.target_row, batch.target_index]
    logp = torch.log_softmax(picked, dim=-1).gather(1, batch.target_label[:, None]).squeeze(1)
    n_seq = 2 * batch.pairs
    logps = torch.zeros(n_seq, dtype=logp.dtype).index_add(0, batch.target_seq, logp)
    logit_sums = torch.zeros(n_seq).index_add(0, batch.target_seq, picked.detach().mean(-1))
    return SequenceScores(logps, logit_sums, torch.cat([batch.chosen_tokens, batch.rejected_tokens]))


def plain_metrics(policy, ref, tokenized, settings):
    """The reference implementation: padded rows, the model's own forward, full logits."""
    batch = collate(tokenized, "padded", pad_id=3)
    pol = score_full_logits(policy, batch)
    with torch.no_grad():
        r = score_full_logits(ref, batch)
    chosen, rejected = pol.logps.chunk(2)
    ref_chosen, ref_rejected = r.logps.chunk(2)
    p = PairLogps(chosen, rejected, ref_chosen, ref_rejected, batch.chosen_tokens.float(),
                  batch.rejected_tokens.float())
    losses = settings.loss(p)
    return losses, metric_sums(losses, p, pol.logit_sums, settings.beta).means()


@pytest.mark.parametrize("arch", ARCHS)
def test_layouts_match_plain_path(arch, tiny_model_dir, tokenizer, pairs):
    policy, ref = models(tiny_model_dir(arch))
    tokenized, _ = tokenize_pairs(pairs, tokenizer, "zephyr")
    assert max(len(p.prompt) + len(p.rejected) for p in tokenized) > 3 * 16  # beyond the sliding window
    settings = LossConfig("sigmoid", beta=0.5)
    losses, expected = plain_metrics(policy, ref, tokenized, settings)
    expected_grads = torch.autograd.grad(losses.sum(), list(policy.parameters()))
    for layout, row_tokens in [("padded", None), ("packed", None), ("packed", 120), ("shared", None),
                               ("shared", 150)]:
        for chunk in (0, 5):
            batch = collate(tokenized, layout, pad_id=3, row_tokens=row_tokens)
            got_losses, sums = pair_outputs(TokenScorer(policy, chunk_size=chunk), batch, settings,
                                            lambda _, b: reference_logps(ref, b))
            got = sums.means()
            for name, value in expected.items():
                assert got[name] == pytest.approx(value, abs=1e-4, rel=1e-5), (layout, row_tokens, chunk, name)
            grads = torch.autograd.grad(got_losses.sum(), list(policy.parameters()))
            for g, e in zip(grads, expected_grads):
                torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-3)


def test_eager_and_sdpa_masks_agree_on_gemma3(tiny_model_dir, tokenizer, pairs):
    """The custom mask in both forms: boolean for sdpa, additive float for eager (per layer type for Gemma 3)."""
    tokenized, _ = tokenize_pairs(pairs, tokenizer, "zephyr")
    folder = tiny_model_dir("gemma3")
    plain = score_full_logits(models(folder, "eager")[0], collate(tokenized, "padded", 3))
    for impl in ("eager", "sdpa"):
        got = completion_logps(models(folder, impl)[0], collate(tokenized, "shared", 3))
        torch.testing.assert_close(got.logps, plain.logps, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("arch,impl", [("llama", "sdpa"), ("gemma3", "sdpa"), ("gemma3", "eager")])
def test_a_leaking_mask_would_be_caught(arch, impl, tiny_model_dir, tokenizer, pairs):
    """Negative control: if the rejected completion could see the chosen one, the numbers change - so the
    comparisons above do detect contamination, for segment attention (sdpa) and the dense mask (eager)."""
    policy, _ = models(tiny_model_dir(arch), impl)
    tokenized, _ = tokenize_pairs(pairs, tokenizer, "zephyr")
    with torch.no_grad():
        clean = completion_logps(policy, collate(tokenized, "shared", 3))
        leaky_batch = collate(tokenized, "shared", 3)
        if impl == "eager":
            leaky_batch.branch_ids = leaky_batch.branch_ids.clamp(max=1)  # one branch for both completions
        else:  # the rejected piece's prefix runs on over the chosen completion
            leaky_batch.pieces = [[dataclasses.replace(p, keys_to=p.start) if p.keys_to else p for p in row]
                                  for row in leaky_batch.pieces]
        leaky = completion_logps(policy, leaky_batch)
    chosen_clean, rejected_clean = clean.logps.chunk(2)
    chosen_leaky, rejected_leaky = leaky.logps.chunk(2)
    torch.testing.assert_close(chosen_leaky, chosen_clean)  # the chosen side comes first: unaffected
    assert (rejected_leaky - rejected_clean).abs().max() > 1e-3


def test_shared_layout_is_smaller(tokenizer, pairs):
    tokenized, _ = tokenize_pairs(pairs, tokenizer, "zephyr")
    padded = collate(tokenized, "padded", 3)
    shared = collate(tokenized, "shared", 3)
    prompts = sum(len(p.prompt) for p in tokenized)
    assert padded.real_tokens - shared.real_tokens == prompts  # each prompt encoded once instead of twice
    assert shared.input_ids.numel() == shared.real_tokens  # one row, no padding
    assert padded.input_ids.numel() > padded.real_tokens
