"""`TokenScorer`: a causal LM wrapped so that its forward returns log-probs of chosen target tokens only.

    scorer = TokenScorer(model)   # a transformers causal LM or a PEFT model around one
    logps, mean_logits = scorer(input_ids, position_ids, target_index, target_ids, attention=None)

`target_index` holds flat positions into input_ids (row * width + index) whose hidden state predicts the token
in `target_ids`; both results are (N_targets,) fp32. SFT (zephyr/sft/loss.py) and DPO (zephyr/dpo/layout.py)
both score through it, so the lm_head checks, the soft-cap and the chunk size are decided here only.

`attention` is the layout's attention kwargs (DPO's masks or segments). Without it, `segments` (built when the
batch was collated, zephyr/train/attention.py) tells packed sequences apart; with neither, rows whose sequences
are told apart by position-id restarts alone, which transformers honours only when the 2-D attention mask is
None *and* no KV cache is built (masking_utils: packed-sequence detection runs only without a mask and without
past_key_values). An all-ones mask, or `use_cache` left at its eval-mode default, silently lets a row attend
as one sequence, so `decoder_hidden` forces both and refuses a mask. With sdpa the scorer switches the model
to segment attention (zephyr/train/segment_attention.py): each conversation attends on its own, cut at the
same position-id restarts, with no dense [L, L] block mask; on CUDA the same segments run through PyTorch's
varlen flash kernel or FlexAttention. Segments from collate time keep the step free of host syncs; ones read
off the position ids (callers that pass none) cost one. With flash_attention_2, the "flat" (1, N) layout goes
through its varlen kernel from the same position ids.

The whole computation (decoder + chunked lm_head) happens inside this module's forward so that DDP, FSDP and
ZeRO-3 hooks see every parameter use; only the small per-target tensors leave it. The head runs the fused
kernel (zephyr/train/chunked_lm_head.py) unless its weight is sharded (ZeRO-3's `ds_id`, FSDP's DTensor) or
it carries a LoRA: those are only gathered, or only applied, by a module call, so they take the checkpointed
module-call path.
"""

from __future__ import annotations

import torch
from torch import nn

from . import attention as packed
from .chunked_lm_head import token_logps, token_logps_checkpointed

# at most this many logits (fp32) exist at once: 2^27 = 512 MB; with Gemma's 262k vocabulary, 512 tokens a chunk
# (smaller chunks re-read the whole 671 MB fp32 head weight more often)
LOGIT_BUDGET = 1 << 27


def tokens_per_chunk(chunk_size: int, vocab: int) -> int:
    """Target tokens per lm_head chunk: `chunk_size` capped by the logit budget; 0 means the budget alone."""
    budget = LOGIT_BUDGET // max(vocab, 1)
    return max(1, min(chunk_size, budget) if chunk_size > 0 else budget)


def _inside_distributed(model: nn.Module) -> nn.Module:
    """The module that accelerate / DDP / FSDP / DeepSpeed wrap (each keeps it as `.module`)."""
    while hasattr(model, "module"):
        model = model.module
    return model


def unwrap(model: nn.Module, keep_peft: bool = False) -> nn.Module:
    """The transformers causal LM inside the distributed wrappers, a TokenScorer and PEFT (LoRA layers are
    injected in place, so they still run). `keep_peft`: stop at the PEFT model, to save or disable its adapter."""
    model = _inside_distributed(model)
    if isinstance(model, TokenScorer):
        model = model.model
    if not keep_peft and hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def scorer_of(model: nn.Module) -> nn.Module:
    """What to call to score with `model`: the model itself when it is a TokenScorer (or a distributed wrapper
    around one, whose hooks must run), else a TokenScorer around it."""
    inner = _inside_distributed(model)
    if isinstance(inner, TokenScorer):
        return model
    if inner is not model:
        raise ValueError("wrap the model in a TokenScorer before accelerate/DDP wraps it: calling a bare model "
                         "inside the wrapper would hide its parameter use from the wrapper's hooks")
    return TokenScorer(model)


def _run_decoder(lm: nn.Module, input_ids: torch.Tensor, position_ids: torch.Tensor, attention: dict
                 ) -> torch.Tensor:
    out = lm.base_model(input_ids=input_ids, position_ids=position_ids, use_cache=False, **attention)
    # the output's cache field is `cache` from transformers 5.24, `past_key_values` before (reading the old name
    # on a new output logs a deprecation warning, so read the field the output class has)
    name = "cache" if "cache" in getattr(out, "__dataclass_fields__", {}) else "past_key_values"
    assert getattr(out, name, None) is None, "a KV cache was built: packed rows would not be isolated"
    return out.last_hidden_state


def decoder_hidden(model: nn.Module, input_ids: torch.Tensor, position_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None, segments: packed.Segments | None = None
                   ) -> torch.Tensor:
    """Final hidden states (after the last norm) of packed rows whose sequences restart their position ids, with
    the guards that keep them isolated. `segments`: the rows' pieces from collate time (else read off the ids)."""
    if attention_mask is not None:
        raise ValueError("packed rows must be run with attention_mask=None: transformers isolates packed "
                         "conversations from position_ids only when no 2-D mask is given")
    lm = unwrap(model)
    attention = {"attention_mask": None}
    if lm.config._attn_implementation == packed.NAME:  # each conversation attended on its own
        if segments is None:
            segments = packed.Segments.build(packed.pieces_from_positions(position_ids), input_ids.shape[1])
        attention = packed.forward_kwargs(lm.config, segments, input_ids.device)
    return _run_decoder(lm, input_ids, position_ids, attention)


def _needs_module_call(head: nn.Module) -> bool:
    """ZeRO-3 / FSDP gather the head's weight only on a module call, and a LoRA on the head needs one too."""
    weight = head.weight
    return hasattr(weight, "ds_id") or type(weight).__name__ == "DTensor" or hasattr(head, "lora_A")


class TokenScorer(nn.Module):
    """Wraps a causal LM (optionally PEFT); see the module docstring. `chunk_size`: target tokens per lm_head
    chunk, at most the logit budget's (0: the budget's, LOGIT_BUDGET // vocab)."""

    def __init__(self, model: nn.Module, chunk_size: int = 0):
        super().__init__()
        self.model = model
        lm = unwrap(model)
        packed.install(lm.config)  # sdpa -> per-conversation attention, no dense block mask
        config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.chunk_size = chunk_size
        # FSDP's transformer-based auto-wrap looks the decoder layer class up on the prepared (outer) module
        self._no_split_modules = getattr(lm, "_no_split_modules", None)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, target_index: torch.Tensor,
                target_ids: torch.Tensor, attention: dict | None = None, segments: packed.Segments | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        lm = unwrap(self.model)
        if attention is None:
            hidden = decoder_hidden(lm, input_ids, position_ids, segments=segments)
        else:
            hidden = _run_decoder(lm, input_ids, position_ids, attention)
        selected = hidden.reshape(-1, hidden.shape[-1]).index_select(0, target_index)
        head = lm.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            raise ValueError("an lm_head with a bias is not supported by the chunked log-prob path")
        chunk = tokens_per_chunk(self.chunk_size, head.weight.shape[0])
        if _needs_module_call(head):
            return token_logps_checkpointed(selected, head, target_ids, chunk, self.softcap)
        return token_logps(selected.to(head.weight.dtype), head.weight, target_ids, chunk, self.softcap)
