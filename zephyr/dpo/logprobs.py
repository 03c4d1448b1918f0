"""Completion log-probabilities from hidden states, chunk by chunk, never the full-vocab logits of a batch.

`install_scoring(model)` adds a path to the causal LM's own forward: called with `score=batch`, it runs the
backbone on the batch's layout (with the layout's own mask), gathers only the hidden states that predict
completion tokens, and projects them through the LM head a chunk of tokens at a time with the shared fused
kernel of zephyr.train.logprobs (only one chunk of [tokens, vocab] logits is ever alive). Going through the model's forward keeps DDP/FSDP wrappers and PEFT
in the loop, as TRL's fused head does.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch

from ..train import segment_attention
from ..train.logprobs import LOGIT_BUDGET, token_logps, token_logps_checkpointed
from .layout import PairBatch, allowed


@dataclass
class SequenceScores:
    logps: torch.Tensor        # [2 * pairs] summed completion log-probs: chosen then rejected
    logit_sums: torch.Tensor   # [2 * pairs] sum over completion tokens of the mean (over vocab) logit, no grad
    tokens: torch.Tensor       # [2 * pairs] completion token counts


def causal_lm(model):
    """The transformers CausalLM inside accelerate/DDP and PEFT wrappers."""
    while hasattr(model, "module"):
        model = model.module
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def default_chunk(vocab_size: int) -> int:
    """Tokens per head chunk: the fused kernel's logit budget (128M logits, 512 MB fp32) at a time; 512 tokens
    for Gemma 3's 262k vocabulary, as in SFT."""
    return max(16, LOGIT_BUDGET // max(vocab_size, 1))


def _attention_kwargs(lm, batch: PairBatch) -> dict:
    """The mask the layout needs, in the form the model's attention kernel takes."""
    config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    if batch.layout == "padded":
        return {"attention_mask": (batch.segment_ids >= 0).long()}
    impl = getattr(lm.config, "_attn_implementation", "sdpa")
    if impl == segment_attention.NAME:
        return segment_attention.forward_kwargs(lm.config, batch.pieces, batch.input_ids.device)
    if impl not in ("sdpa", "eager"):
        raise ValueError(f"the {batch.layout!r} layout needs attn_implementation sdpa or eager (got {impl!r}); "
                         "use layout: padded with other kernels")
    dtype = next(lm.parameters()).dtype

    def form(mask: torch.Tensor) -> torch.Tensor:
        if impl == "sdpa":
            return mask
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)

    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or []
    if "sliding_attention" in layer_types:  # Gemma 2/3 style: a mask per layer type
        return {"attention_mask": {"full_attention": form(allowed(batch)),
                                   "sliding_attention": form(allowed(batch, window))}}
    return {"attention_mask": form(allowed(batch, window))}


def _sharded_or_adapted(head) -> bool:
    """ZeRO-3 / FSDP gather the head's weight only on a module call, and a LoRA on the head needs one too."""
    weight = head.weight
    return hasattr(weight, "ds_id") or type(weight).__name__ == "DTensor" or hasattr(head, "lora_A")


def _scoring_forward(self, *args, score: PairBatch | None = None, score_chunk: int | None = None, **kwargs):
    if score is None:
        return self._zephyr_original_forward(*args, **kwargs)
    batch = score
    backbone = getattr(self, self.base_model_prefix)
    out = backbone(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False,
                   **_attention_kwargs(self, batch))
    hidden = out.last_hidden_state[batch.target_row, batch.target_index]
    head = self.get_output_embeddings()
    config = self.config.get_text_config() if hasattr(self.config, "get_text_config") else self.config
    chunk = score_chunk or default_chunk(head.weight.shape[0])
    softcap = getattr(config, "final_logit_softcapping", None)
    if getattr(head, "bias", None) is not None:
        raise ValueError("an lm_head with a bias is not supported by the chunked log-prob path")
    if _sharded_or_adapted(head):
        logp, mean_logit = token_logps_checkpointed(hidden, head, batch.target_label, chunk, softcap)
    else:
        logp, mean_logit = token_logps(hidden.to(head.weight.dtype), head.weight, batch.target_label, chunk, softcap)
    n_seq = 2 * batch.pairs
    seq = batch.target_seq
    logps = torch.zeros(n_seq, dtype=logp.dtype, device=logp.device).index_add(0, seq, logp)
    logit_sums = torch.zeros(n_seq, dtype=torch.float32, device=logp.device).index_add(0, seq, mean_logit)
    tokens = torch.cat([batch.chosen_tokens, batch.rejected_tokens]).to(logp.device)
    return SequenceScores(logps, logit_sums, tokens)


def install_scoring(model) -> None:
    """Patch the causal LM's forward (once) to accept `score=batch`; the ordinary forward is unchanged."""
    lm = causal_lm(model)
    segment_attention.install(lm.config)
    if getattr(lm, "_zephyr_original_forward", None) is None:
        lm._zephyr_original_forward = lm.forward
        lm.forward = types.MethodType(_scoring_forward, lm)


def score(model, batch: PairBatch, chunk: int | None = None) -> SequenceScores:
    """Summed completion log-probs of every chosen and rejected completion in the batch."""
    install_scoring(model)
    return model(score=batch, score_chunk=chunk)


def score_full_logits(model, batch: PairBatch) -> SequenceScores:
    """The plain path, for tests: the model's own forward and full logits, log-softmax, gather."""
    lm = causal_lm(model)
    forward = getattr(lm, "_zephyr_original_forward", lm.forward)
    logits = forward(input_ids=batch.input_ids, position_ids=batch.position_ids,
                                         use_cache=False, **_attention_kwargs(lm, batch)).logits.float()
    picked = logits[batch.target_row, batch.target_index]
    logp = torch.log_softmax(picked, dim=-1).gather(1, batch.target_label[:, None]).squeeze(1)
    n_seq = 2 * batch.pairs
    logps = torch.zeros(n_seq, dtype=logp.dtype).index_add(0, batch.target_seq, logp)
    logit_sums = torch.zeros(n_seq).index_add(0, batch.target_seq, picked.detach().mean(-1))
    return SequenceScores(logps, logit_sums, torch.cat([batch.chosen_tokens, batch.rejected_tokens]))
