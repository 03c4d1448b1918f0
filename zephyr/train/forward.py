"""`TokenScorer`: a causal LM wrapped so that its forward returns log-probs of chosen target tokens only.

forward(input_ids, position_ids, target_index, target_ids) -> (logps, mean_logits), both (N_targets,) fp32.

Packed rows are isolated by position ids alone, which transformers honours only when the 2-D attention mask is
None *and* no KV cache is built (masking_utils: packed-sequence detection runs only without a mask and without
past_key_values). An all-ones mask, or `use_cache` left at its eval-mode default, silently lets a row attend
as one sequence, so `decoder_hidden` forces both and refuses a mask. With sdpa, `TokenScorer` switches the
model to segment attention (zephyr/train/segment_attention.py): each conversation attends on its own, cut
at the same position-id restarts, with no dense [L, L] block mask. On GPU with flash-attention, the
"flat" (1, N) layout goes through the varlen kernel from the same position ids.

The whole computation (decoder + chunked lm_head) happens inside this module's forward so that DDP, FSDP and
ZeRO-3 hooks see every parameter use; only the small per-target tensors leave it.
"""

from __future__ import annotations

import torch
from torch import nn

from . import segment_attention
from .logprobs import token_logps, token_logps_checkpointed


def causal_lm_of(model: nn.Module) -> nn.Module:
    """The transformers *ForCausalLM inside a PEFT wrapper (LoRA layers are injected in place, so still used)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_hidden(model: nn.Module, input_ids: torch.Tensor, position_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Final hidden states (after the last norm) of a packed batch, with the guards that keep rows isolated."""
    if attention_mask is not None:
        raise ValueError("packed rows must be run with attention_mask=None: transformers isolates packed "
                         "conversations from position_ids only when no 2-D mask is given")
    lm = causal_lm_of(model)
    kwargs = {"attention_mask": None}
    if lm.config._attn_implementation == segment_attention.NAME:  # each conversation attended on its own
        kwargs = segment_attention.forward_kwargs(lm.config, segment_attention.pieces_from_positions(position_ids),
                                                  input_ids.device)
    out = lm.base_model(input_ids=input_ids, position_ids=position_ids, use_cache=False, **kwargs)
    # the output's cache field is `cache` from transformers 5.24, `past_key_values` before (reading the old name
    # on a new output logs a deprecation warning, so read the field the output class has)
    name = "cache" if "cache" in getattr(out, "__dataclass_fields__", {}) else "past_key_values"
    assert getattr(out, name, None) is None, "a KV cache was built: packed rows would not be isolated"
    return out.last_hidden_state


class TokenScorer(nn.Module):
    """Wraps a causal LM (optionally PEFT); see the module docstring. `fused=False` for FSDP / ZeRO-3."""

    def __init__(self, model: nn.Module, chunk_size: int = 2048, fused: bool = True):
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size
        self.fused = fused
        lm = causal_lm_of(model)
        lm.config.use_cache = False
        segment_attention.install(lm.config)  # sdpa -> per-conversation attention, no dense block mask
        self.softcap = getattr(lm.config, "final_logit_softcapping", None)
        # FSDP's transformer-based auto-wrap looks the decoder layer class up on the prepared (outer) module
        self._no_split_modules = getattr(lm, "_no_split_modules", None)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, target_index: torch.Tensor,
                target_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = decoder_hidden(self.model, input_ids, position_ids)
        selected = hidden.reshape(-1, hidden.shape[-1]).index_select(0, target_index)
        head = causal_lm_of(self.model).get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            raise ValueError("lm_head with a bias is not supported by the chunked log-prob path")
        if self.fused and not hasattr(head, "lora_A"):  # a LoRA on the head itself needs the module call
            return token_logps(selected, head.weight, target_ids, self.chunk_size, self.softcap)
        return token_logps_checkpointed(selected, head, target_ids, self.chunk_size, self.softcap)
