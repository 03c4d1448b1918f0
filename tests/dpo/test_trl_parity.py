"""TRL's DPOTrainer is the oracle: on the same tiny model, the same tokenised pairs and the same beta, our loss
and every published metric equal its, to 1e-4 in fp32; and a short training run's loss curve matches its run
step for step within 1%.

TRL is fed our token ids (its own collator over prompt_ids/chosen_ids/rejected_ids), so both sides score the
same tokens; TRL's bf16 default is turned off for an fp32 comparison.
"""

import copy

import pytest
import torch

trl = pytest.importorskip("trl")
from datasets import Dataset  # noqa: E402
from torch.utils.data import SequentialSampler  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from zephyr.chat_template import set_chat_template  # noqa: E402
from zephyr.dpo.config import DPOConfig  # noqa: E402
from zephyr.dpo.layout import collate  # noqa: E402
from zephyr.dpo.loss_metrics import METRIC_NAMES, pair_outputs
from zephyr.dpo.losses import LossConfig  # noqa: E402
from zephyr.dpo.reference import frozen_copy, reference_logps  # noqa: E402
from zephyr.dpo.tokenize import tokenize_pairs  # noqa: E402
from zephyr.dpo.train import DPOObjective, micro_batches  # noqa: E402
from zephyr.train.trainer import Trainer  # noqa: E402


class PreTokenizedDPOTrainer(trl.DPOTrainer):
    """Takes a dataset already holding prompt_ids/chosen_ids/rejected_ids, and keeps its order."""

    def _prepare_dataset(self, dataset, *args, **kwargs):
        return dataset

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


def trl_args(tmp_path, loss_type, beta, **kw):
    return trl.DPOConfig(output_dir=str(tmp_path / "trl"), beta=beta, loss_type=[loss_type], report_to=[],
                         use_cpu=True, bf16=False, max_length=None, save_strategy="no", **kw)


def as_rows(tokenized):
    return [{"prompt_ids": p.prompt, "chosen_ids": p.chosen, "rejected_ids": p.rejected} for p in tokenized]


def reference_and_moved_policy(folder):
    """The tiny model as reference and a policy whose weights are moved off it, so the pairs' rewards differ."""
    torch.manual_seed(0)
    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    policy = copy.deepcopy(ref)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return ref, policy


@pytest.fixture
def setup(tiny_model_dir, tokenizer, pairs):
    folder = tiny_model_dir("mistral")
    set_chat_template(tokenizer, "zephyr")
    tokenized, _ = tokenize_pairs(pairs, tokenizer, "zephyr")
    return folder, tokenizer, tokenized


@pytest.mark.parametrize("loss_type,beta", [("sigmoid", 0.1), ("ipo", 0.1), ("sigmoid", 0.5)])
def test_one_batch_metrics_equal_trl(setup, tmp_path, loss_type, beta):
    folder, tokenizer, tokenized = setup
    ref, policy = reference_and_moved_policy(folder)
    theirs_policy, theirs_ref = copy.deepcopy(policy), copy.deepcopy(ref)

    losses, sums = pair_outputs(policy, collate(tokenized, "shared", tokenizer.pad_token_id),
                                LossConfig(loss_type, beta), lambda _, b: reference_logps(ref, b))
    ours = sums.means()

    trainer = PreTokenizedDPOTrainer(model=theirs_policy, ref_model=theirs_ref, args=trl_args(tmp_path, loss_type, beta),
                                     processing_class=tokenizer, train_dataset=Dataset.from_list(as_rows(tokenized)))
    inputs = trainer.data_collator(as_rows(tokenized))
    theirs_policy.train()
    loss = trainer._compute_loss(theirs_policy, inputs, False)
    theirs = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    theirs["loss"] = loss.item()
    assert set(METRIC_NAMES) <= set(theirs)
    for name in METRIC_NAMES:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-4), name
    assert losses.mean().item() == pytest.approx(loss.item(), abs=1e-4)
    assert 0 < ours["rewards/accuracies"] < 1  # a non-degenerate batch


def test_short_run_loss_curve_matches_trl(setup, tmp_path):
    folder, tokenizer, tokenized = setup
    tokenized = (tokenized * 3)[:12]
    for i, p in enumerate(tokenized):
        p.index = i
    steps, batch, lr, beta = 5, 2, 5e-3, 0.1
    cfg = DPOConfig(model=str(folder), output_dir=str(tmp_path / "ours"), learning_rate=lr, beta=beta,
                    lr_scheduler_type="constant", warmup_ratio=0.0, max_steps=steps, logging_steps=1,
                    per_device_train_batch_size=batch, save_steps=0, report_to=[], progress_bar=False,
                    max_grad_norm=1.0)
    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    theirs_policy, theirs_ref = copy.deepcopy(policy), copy.deepcopy(policy)
    objective = DPOObjective(cfg, tokenizer.pad_token_id, "copy", frozen_copy(policy))
    items = micro_batches(tokenized, batch, cfg.seed)
    ours = Trainer(cfg, policy, objective.loss_fn, items, objective.collate)
    order = ours.epoch_order(0)
    result = ours.train()
    our_losses = [r["loss"] for r in result.log_history if "loss" in r]

    in_our_order = [p for i in order for p in items[i]]
    trainer = PreTokenizedDPOTrainer(
        model=theirs_policy, ref_model=theirs_ref, processing_class=tokenizer,
        train_dataset=Dataset.from_list(as_rows(in_our_order)),
        args=trl_args(tmp_path, "sigmoid", beta, learning_rate=lr, lr_scheduler_type="constant", max_steps=steps,
                      logging_steps=1, per_device_train_batch_size=batch, max_grad_norm=1.0, disable_tqdm=True))
    trainer.train()
    trl_losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert len(our_losses) == len(trl_losses) == steps
    assert our_losses[0] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    assert our_losses[-1] < our_losses[0] - 0.05  # it learns, so later steps compare trained weights
    for step, (a, b) in enumerate(zip(our_losses, trl_losses), 1):
        assert a == pytest.approx(b, rel=0.01), f"step {step}: ours {a} vs TRL {b}"


def test_rpo_equals_trls_sigmoid_plus_sft_loss(setup, tmp_path):
    # one pair per batch: our per-pair token mean and TRL's batch token mean of the chosen NLL are the same number
    folder, tokenizer, tokenized = setup
    ref, policy = reference_and_moved_policy(folder)
    theirs_policy, theirs_ref = copy.deepcopy(policy), copy.deepcopy(ref)
    one = tokenized[:1]
    losses, sums = pair_outputs(policy, collate(one, "shared", tokenizer.pad_token_id),
                                LossConfig("sigmoid", 0.1, rpo_alpha=0.7), lambda _, b: reference_logps(ref, b))
    plain, _ = pair_outputs(policy, collate(one, "shared", tokenizer.pad_token_id), LossConfig("sigmoid", 0.1),
                            lambda _, b: reference_logps(ref, b))
    args = trl.DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.1, loss_type=["sigmoid", "sft"],
                         loss_weights=[1.0, 0.7], report_to=[], use_cpu=True, bf16=False, max_length=None,
                         save_strategy="no")
    trainer = PreTokenizedDPOTrainer(model=theirs_policy, ref_model=theirs_ref, args=args, processing_class=tokenizer,
                                     train_dataset=Dataset.from_list(as_rows(one)))
    theirs_policy.train()
    loss = trainer._compute_loss(theirs_policy, trainer.data_collator(as_rows(one)), False)
    assert losses.item() == pytest.approx(loss.item(), abs=1e-4)
    assert losses.item() > plain.item() + 0.1  # the NLL term is there
    assert sums.means()["nll_loss"] == pytest.approx((losses - plain).item() / 0.7, abs=1e-5)
