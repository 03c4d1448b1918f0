"""The generic Trainer: exact gradient accumulation, kill-and-resume equals an uninterrupted run, atomic checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from zephyr.models import LoraModelConfig, lora_config
from zephyr.train.trainer import enable_checkpointing
from zephyr.train import TokenScorer, TrainConfig, Trainer, Tokenized, collate_rows, latest_checkpoint, read_metrics


def nll_loss(model, batch):
    logps, _ = model(batch["input_ids"], batch["position_ids"], batch["target_index"], batch["target_ids"])
    return -logps.sum(), batch["n_targets"], {"logp_sum": logps.detach().sum()}


def _examples(vocab: int, n: int, seed: int = 0) -> list[Tokenized]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(6, 30, (1,), generator=g))  # different target counts per example
        cut = int(torch.randint(2, length - 1, (1,), generator=g))
        out.append(Tokenized([1] + torch.randint(4, vocab, (length - 1,), generator=g).tolist(),
                             [0] * cut + [1] * (length - cut)))
    return out


def _model(folder, lora: bool = False):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if lora:
        from peft import get_peft_model

        torch.manual_seed(0)
        model = get_peft_model(model, lora_config(LoraModelConfig(use_lora=True, lora_r=4, lora_dropout=0.1)))
    return model


def _config(tmp_path, **overrides) -> TrainConfig:
    values = dict(output_dir=str(tmp_path), learning_rate=1e-3, warmup_ratio=0.0, lr_scheduler_type="linear",
                  logging_steps=1, save_steps=0, progress_bar=False, report_to=["jsonl"], seed=7)
    values.update(overrides)
    return TrainConfig(**values)


def _captured_grads(trainer):
    """Record the gradients the optimizer sees at each step (they are zeroed right after)."""
    seen = []
    inner = trainer.optimizer.optimizer
    original = inner.step

    def step(*args, **kwargs):
        seen.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        return original(*args, **kwargs)

    inner.step = step
    return seen


def test_accumulating_8x1_equals_one_batch_of_8(tmp_path, tiny_model_dir):
    folder = tiny_model_dir("mistral")
    vocab = AutoModelForCausalLM.from_pretrained(folder).config.vocab_size
    examples = _examples(vocab, 8)
    assert len({sum(e.mask[1:]) for e in examples}) > 1  # unequal targets: per-micro-batch averaging would differ

    def collate(item):
        return collate_rows(item, examples, pad_id=0)

    results = {}
    for name, items, ga in (("big", [[[i] for i in range(8)]], 1), ("accumulated", [[[i]] for i in range(8)], 8)):
        trainer = Trainer(_config(tmp_path / name, max_steps=1, gradient_accumulation_steps=ga),
                          TokenScorer(_model(folder), chunk_size=16), nll_loss, items, collate)
        grads = _captured_grads(trainer)
        result = trainer.train()
        results[name] = (result.log_history[0]["loss"], grads[0])
    big_loss, big_grads = results["big"]
    acc_loss, acc_grads = results["accumulated"]
    assert acc_loss == pytest.approx(big_loss, abs=1e-5)
    assert big_grads.keys() == acc_grads.keys() and big_grads
    for name in big_grads:
        torch.testing.assert_close(acc_grads[name], big_grads[name], atol=1e-5, rtol=1e-5)
    # and the loss is the token-weighted mean NLL of the 8 conversations, computed independently
    model = TokenScorer(_model(folder))
    with torch.no_grad():
        batch = collate([[i] for i in range(8)])
        expected = -model(batch["input_ids"], batch["position_ids"], batch["target_index"],
                          batch["target_ids"])[0].mean().item()
    assert big_loss == pytest.approx(expected, abs=1e-5)


class Kill(Exception):
    pass


def _kill_after(k):
    def callback(trainer, event, step):
        if event == "step_end" and step == k:
            raise Kill(step)
    return callback


@pytest.mark.parametrize("lora", [False, True])
def test_kill_and_resume_reaches_the_same_weights(tmp_path, tiny_model_dir, lora):
    folder = tiny_model_dir("llama")
    examples = _examples(512, 12, seed=1)
    items = [[[i], [i + 1]] for i in range(0, 12, 2)]  # 6 micro-batches of 2 rows

    def collate(item):
        return collate_rows(item, examples, pad_id=0)

    def run(out, callbacks=(), resume=False):
        cfg = _config(out, num_train_epochs=2, gradient_accumulation_steps=2, save_steps=2, save_total_limit=2,
                      resume=resume, eval_steps=3)
        trainer = Trainer(cfg, TokenScorer(_model(folder, lora), chunk_size=8), nll_loss, items, collate,
                          eval_items=items[:2], callbacks=callbacks)
        return trainer, trainer.train()

    straight, straight_result = run(tmp_path / "straight")
    assert straight_result.global_step == 6  # 6 micro-batches / ga 2 = 3 steps per epoch, 2 epochs
    with pytest.raises(Kill):
        run(tmp_path / "resumed", callbacks=[_kill_after(3)])
    assert latest_checkpoint(tmp_path / "resumed").name == "checkpoint-2"
    resumed, resumed_result = run(tmp_path / "resumed", resume=True)
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    # the metrics log is continuous: no duplicate step from the killed run
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed" / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in resumed_result.log_history if "loss" in r] == pytest.approx(
        [r["loss"] for r in straight_result.log_history if "loss" in r], abs=1e-6)
    # checkpoint contents: weights in safetensors, tokenizer-free here, trainer state with the data position
    final = latest_checkpoint(tmp_path / "resumed")
    assert final.name == "checkpoint-6"
    assert list(final.glob("*.safetensors")) and (final / "state").is_dir()
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["steps_per_epoch"] == 3
    kept = sorted(p.name for p in (tmp_path / "resumed").glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-6"]  # save_total_limit=2
    if lora:
        assert (final / "adapter_model.safetensors").exists()
    evals = [r for r in resumed_result.log_history if "eval_loss" in r]
    assert [r["step"] for r in evals] == [3, 6]


def test_half_written_checkpoint_is_never_resumed(tmp_path):
    good = tmp_path / "checkpoint-2"
    good.mkdir()
    (good / "trainer_state.json").write_text("{}")
    (good / "COMPLETE").write_text("")
    (tmp_path / "checkpoint-4.tmp").mkdir()  # a crash during the rename-less staging phase
    (tmp_path / "checkpoint-4.tmp" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-4.tmp" / "COMPLETE").write_text("")
    (tmp_path / "checkpoint-6").mkdir()  # renamed but without the completion marker: never produced by us, ignore
    (tmp_path / "checkpoint-6" / "trainer_state.json").write_text("{}")
    assert latest_checkpoint(tmp_path) == good


def test_rotation_killed_halfway_leaves_no_checkpoint_that_looks_complete(tmp_path, monkeypatch):
    from zephyr.train import checkpoint

    for step in (2, 4):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in ("model.safetensors", "trainer_state.json", "COMPLETE"):
            (folder / name).write_text("{}")

    def killed_rmtree(path, ignore_errors=False):  # the weights go first, then the process is killed
        (Path(path) / "model.safetensors").unlink()
        raise Kill

    monkeypatch.setattr(checkpoint.shutil, "rmtree", killed_rmtree)
    with pytest.raises(Kill):
        checkpoint.rotate(tmp_path, keep=1)
    assert checkpoint.checkpoint_dirs(tmp_path) == [tmp_path / "checkpoint-4"]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 640 vs 574")])
def test_disk_full_during_a_checkpoint_is_a_clear_error_and_keeps_the_previous_one(tmp_path, tiny_model_dir,
                                                                                   monkeypatch, failure):
    from zephyr.errors import ZephyrError
    from zephyr.train import checkpoint, trainer as trainer_module

    examples = _examples(512, 4)
    items = [[[i]] for i in range(4)]

    def run(**overrides):
        cfg = _config(tmp_path, max_steps=3, save_steps=1, save_total_limit=1, **overrides)
        return Trainer(cfg, TokenScorer(_model(tiny_model_dir("mistral"))), nll_loss, items,
                       lambda item: collate_rows(item, examples, 0))

    writes = []
    real = trainer_module.save_tensors_dict

    def full_disk(state, path):  # the second checkpoint's optimizer state hits a full disk
        writes.append(path)
        if "checkpoint-2" in str(path):
            raise failure
        real(state, path)

    monkeypatch.setattr(trainer_module, "save_tensors_dict", full_disk)
    with pytest.raises(ZephyrError, match=f"no space left on {tmp_path}: checkpoint-2 was not written; the earlier "
                                          "checkpoints are intact \\(checkpoint-1\\)"):
        run().train()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint")] == ["checkpoint-1"]
    assert checkpoint.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-1"
    monkeypatch.setattr(trainer_module, "save_tensors_dict", real)
    assert run(resume=True).train().global_step == 3  # and the run continues from it once there is space


def test_too_little_data_is_a_clear_error(tmp_path, tiny_model_dir):
    from zephyr.errors import ConfigError

    examples = _examples(512, 1)
    with pytest.raises(ConfigError, match="not one optimizer step"):
        Trainer(_config(tmp_path, gradient_accumulation_steps=4), TokenScorer(_model(tiny_model_dir("mistral"))),
                nll_loss, [[[0]]], lambda item: collate_rows(item, examples, 0))


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_dir):
    folder = tiny_model_dir("gemma3")
    examples = _examples(512, 4, seed=2)
    batch = collate_rows([[0, 1], [2, 3]], examples, pad_id=0)
    grads = []
    for checkpointing in (False, True):
        model = _model(folder, lora=True)
        if checkpointing:
            enable_checkpointing(model)
        model.train()
        torch.manual_seed(0)  # same LoRA dropout masks (recomputation replays the RNG state)
        loss, _, _ = nll_loss(TokenScorer(model, chunk_size=8), batch)
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)


def test_evaluation_shows_a_progress_bar(tmp_path, tiny_model_dir, capsys):
    examples = _examples(512, 6)
    items = [[[i]] for i in range(6)]
    trainer = Trainer(_config(tmp_path, progress_bar=True), TokenScorer(_model(tiny_model_dir("mistral"))), nll_loss,
                      items[:2], lambda item: collate_rows(item, examples, 0), eval_items=items[2:])
    result = trainer.evaluate()
    assert result["eval_loss"] > 0
    err = capsys.readouterr().err
    assert "eval:" in err and "/4 [" in err  # a bar over the 4 eval batches (leave=False clears it at the end)


def test_resume_refuses_other_training_data_and_unknown_precision(tmp_path, tiny_model_dir):
    from zephyr.errors import ConfigError

    examples = _examples(512, 4)
    items = [[[i]] for i in range(4)]

    def trainer(fingerprint, resume=False, mixed_precision="no"):
        return Trainer(_config(tmp_path, max_steps=2, save_steps=1, resume=resume),
                       TokenScorer(_model(tiny_model_dir("mistral"))), nll_loss, items,
                       lambda item: collate_rows(item, examples, 0), data_fingerprint=fingerprint,
                       mixed_precision=mixed_precision)

    with pytest.raises(ConfigError, match="mixed_precision: 'fp16' is not one of no, bf16"):
        trainer("a", mixed_precision="fp16")
    trainer("a").train()
    with pytest.raises(ConfigError, match="it was trained on other data"):
        trainer("b", resume=True).train()
    assert trainer("a", resume=True).train().global_step == 2
