"""The shared scorer: what `unwrap` finds inside each wrapper, how the chunk size is chosen, and that a LoRA on
the lm_head (the module-call path) scores what the model's own forward and full logits give."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from zephyr.train.packing import Tokenized, collate_rows
from zephyr.train.scoring import LOGIT_BUDGET, TokenScorer, scorer_of, tokens_per_chunk, unwrap


def test_unwrap_strips_distributed_scorer_and_peft_wrappers(tiny_model_dir):
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir("mistral"))
    peft = get_peft_model(lm, LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    scorer = TokenScorer(peft)

    class Distributed(torch.nn.Module):  # what DDP / FSDP / DeepSpeed look like from outside: `.module`
        def __init__(self, module):
            super().__init__()
            self.module = module

    wrapped = Distributed(scorer)
    assert unwrap(wrapped) is lm and unwrap(scorer) is lm and unwrap(peft) is lm and unwrap(lm) is lm
    assert unwrap(wrapped, keep_peft=True) is peft and unwrap(lm, keep_peft=True) is lm
    assert scorer_of(wrapped) is wrapped and scorer_of(scorer) is scorer
    assert isinstance(scorer_of(lm), TokenScorer) and scorer_of(lm).model is lm


def test_chunk_size_zero_is_the_logit_budget():
    assert tokens_per_chunk(0, 1 << 18) == LOGIT_BUDGET // (1 << 18) == 512
    assert tokens_per_chunk(100, 1 << 18) == 100
    assert tokens_per_chunk(4096, 1 << 18) == 512  # a positive size is capped by the budget
    assert tokens_per_chunk(0, LOGIT_BUDGET * 2) == 1


def test_lora_on_the_head_takes_the_module_call_and_matches_full_logits(tiny_model_dir):
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.float32)
    peft = get_peft_model(lm, LoraConfig(r=4, target_modules=["lm_head", "q_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():  # a trained-looking adapter (B is zero at init)
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    assert hasattr(lm.get_output_embeddings(), "lora_A")
    ids = [1] + torch.randint(4, lm.config.vocab_size, (20,), generator=torch.Generator().manual_seed(1)).tolist()
    batch = collate_rows([[0]], [Tokenized(ids, [0] * 5 + [1] * 16)], pad_id=0)
    with torch.no_grad():
        logps, means = TokenScorer(peft, chunk_size=3)(batch["input_ids"], batch["position_ids"],
                                                       batch["target_index"], batch["target_ids"])
        logits = peft(input_ids=batch["input_ids"]).logits[0].float()[batch["target_index"]]
    expected = torch.log_softmax(logits, -1).gather(1, batch["target_ids"][:, None]).squeeze(1)
    torch.testing.assert_close(logps, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(means, logits.mean(-1), atol=1e-5, rtol=0)
