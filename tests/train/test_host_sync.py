"""A training step reads no device value back to Python except at logging intervals: the whole step (collate,
transfer, forward, backward, clipping, optimizer, metric sums) of SFT and DPO, on the CPU, with every tensor
-> Python conversion counted (on a GPU each one would wait for all queued work)."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from zephyr.train import TokenScorer, TrainConfig, Trainer
from zephyr.train.packing import Tokenized, collate_rows, pack

NAMES = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")
# CPU-only code paths of torch itself: AdamW's per-parameter loop reads its host step counter (on CUDA the
# trainer uses the fused kernel, which does not)
HOST_ONLY = (str(Path(torch.__file__).parent / "optim"),)


class StepConversions:
    """Counts tensor -> Python conversions per training step; `phase` is the step running, or a name for the
    parts where conversions are allowed: collate (host tensors, built before the transfer), logging, saving, the
    epoch's data order (from a CPU generator)."""

    def __init__(self, monkeypatch, trainer: Trainer):
        self.calls: dict[object, list[str]] = defaultdict(list)
        self.phase: object = 1
        for name in NAMES:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _name=name, _original=original, **kwargs):
                caller = sys._getframe(1).f_code.co_filename
                if not caller.startswith(HOST_ONLY):
                    self.calls[self.phase].append(f"{_name} from {caller}:{sys._getframe(1).f_lineno}")
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)
        for method in ("collate", "_log_interval", "save_checkpoint", "save_final", "epoch_order"):
            self._allow(monkeypatch, trainer, method)
        trainer.callbacks.append(self._step_end)

    def _allow(self, monkeypatch, trainer, method):
        original = getattr(trainer, method)

        def allowed(*args, **kwargs):
            outer, self.phase = self.phase, method
            try:
                return original(*args, **kwargs)
            finally:
                self.phase = outer
        monkeypatch.setattr(trainer, method, allowed)

    def _step_end(self, trainer, event, step):
        if event == "step_end":
            self.phase = step + 1

    def in_steps(self, total: int) -> dict[int, list[str]]:
        return {k: v for k, v in self.calls.items() if isinstance(k, int) and k <= total}


def _config(tmp_path, **overrides) -> dict:
    values = dict(output_dir=str(tmp_path), learning_rate=1e-3, warmup_ratio=0.0, max_steps=4, logging_steps=3,
                  gradient_accumulation_steps=2, max_grad_norm=1.0, save_steps=0, progress_bar=False,
                  report_to=["jsonl"], seed=3)
    values.update(overrides)
    return values


def _check(trainer: Trainer, monkeypatch) -> None:
    counter = StepConversions(monkeypatch, trainer)
    result = trainer.train()
    assert counter.in_steps(trainer.total_steps) == {}
    # logged at steps 3 and 4 (the last), the values read back there
    assert [r["step"] for r in result.log_history] == [3, 4]
    assert counter.calls["_log_interval"]
    assert all(r["grad_norm"] > 0 and isinstance(r["grad_norm"], float) for r in result.log_history)


def test_sft_steps_read_nothing_back(tmp_path, tiny_model_dir, monkeypatch):
    from zephyr.sft.loss import sft_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    examples = []
    for _ in range(24):
        length = int(torch.randint(6, 20, (1,), generator=g))
        examples.append(Tokenized([1] + torch.randint(4, model.config.vocab_size, (length - 1,), generator=g).tolist(),
                                  [0] * 3 + [1] * (length - 3)))
    rows = pack(examples, 40)
    items = [rows[i:i + 2] for i in range(0, len(rows) - 1, 2)]
    trainer = Trainer(TrainConfig(**_config(tmp_path)), TokenScorer(model, chunk_size=16), sft_loss, items,
                      lambda item: collate_rows(item, examples, pad_id=0))
    _check(trainer, monkeypatch)


def test_dpo_steps_read_nothing_back(tmp_path, tiny_model_dir, tokenizer, monkeypatch):
    from zephyr.dpo.config import DPOConfig
    from zephyr.dpo.reference import frozen_copy
    from zephyr.dpo.tokenize import TokenizedPair
    from zephyr.dpo.train import DPOObjective, micro_batches

    folder = tiny_model_dir("llama")
    lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = TokenScorer(lm)
    g = torch.Generator().manual_seed(0)

    def ids(n):
        return torch.randint(4, lm.config.vocab_size, (n,), generator=g).tolist()

    pairs = [TokenizedPair(prompt=ids(5 + i % 4), chosen=ids(3 + i % 5), rejected=ids(6 - i % 3), index=i)
             for i in range(16)]
    cfg = DPOConfig(model=str(folder), per_device_train_batch_size=2, **_config(tmp_path))
    objective = DPOObjective(cfg, 0, "copy", frozen_copy(model))
    trainer = Trainer(cfg, model, objective.loss_fn, micro_batches(pairs, 2, cfg.seed), objective.collate)
    _check(trainer, monkeypatch)
