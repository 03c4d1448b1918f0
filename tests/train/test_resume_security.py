"""`--resume` never runs code from the checkpoint folder: the training state is read without unpickling, so a
pickle planted where the state is read is refused, and one planted under accelerate's or torch.distributed.checkpoint's
file names (the FSDP state) is never read."""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch

from zephyr.errors import ZephyrError
from zephyr.train import TokenScorer, TrainConfig, Trainer, collate_rows, latest_checkpoint
from tests.train.test_trainer import _examples, _model, nll_loss


class Payload:
    """Unpickling this creates `marker` (any code could run in its place)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _trainer(out, folder, resume=False):
    examples = _examples(512, 4)
    cfg = TrainConfig(output_dir=str(out), max_steps=2, save_steps=1, learning_rate=1e-3, warmup_ratio=0.0,
                      progress_bar=False, report_to=["jsonl"], resume=resume, seed=3)
    return Trainer(cfg, TokenScorer(_model(folder)), nll_loss, [[[i]] for i in range(4)],
                   lambda item: collate_rows(item, examples, 0))


@pytest.fixture
def trained(tmp_path, tiny_model_dir):
    folder = tiny_model_dir("mistral")
    out = tmp_path / "run"
    _trainer(out, folder).train()
    return out, folder


def test_a_planted_pickle_in_the_state_is_refused_not_run(trained, tmp_path):
    out, folder = trained
    marker = tmp_path / "pwned"
    state = latest_checkpoint(out) / "state"
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({"state": Payload(marker)}, state / name)
    with pytest.raises(ZephyrError, match="refusing to unpickle it"):
        _trainer(out, folder, resume=True).train()
    assert not marker.exists()


@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"])
def test_pickles_under_accelerates_names_are_never_read(trained, tmp_path, name):
    """accelerate's load_state unpickles its custom state (the scheduler) with weights_only=False."""
    out, folder = trained
    marker = tmp_path / "pwned"
    torch.save(Payload(marker), latest_checkpoint(out) / "state" / name)
    assert _trainer(out, folder, resume=True).train().global_step == 2
    assert not marker.exists()


def test_the_state_holds_no_pickle_but_the_weights_only_tensor_dicts(trained):
    out, _ = trained
    state = latest_checkpoint(out) / "state"
    names = sorted(p.name for p in state.iterdir())
    assert names == ["optimizer.pt", "rng_0.json", "rng_0.safetensors", "scheduler.pt", "trainable.safetensors"]
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.load(state / name, weights_only=True)  # loads under the restricted unpickler


@pytest.fixture
def one_process_group(tmp_path):
    """A one-process gloo group, so that FSDP shards (over one process) without a launcher."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _sharded_trainer(out, folder, resume=False):
    examples = _examples(512, 4)
    cfg = TrainConfig(output_dir=str(out), max_steps=2, save_steps=1, learning_rate=1e-3, warmup_ratio=0.0,
                      progress_bar=False, report_to=["jsonl"], resume=resume, seed=3, fsdp=True, save_total_limit=2)
    return Trainer(cfg, TokenScorer(_model(folder)), nll_loss, [[[i]] for i in range(4)],
                   lambda item: collate_rows(item, examples, 0))


def test_a_sharded_checkpoint_reads_no_pickle(one_process_group, tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    from zephyr.errors import ConfigError
    from zephyr.train import fsdp

    folder, out, marker = tiny_model_dir("mistral"), tmp_path / "run", tmp_path / "pwned"
    straight = _sharded_trainer(out, folder).train()
    weights = load_file(out / "model.safetensors")
    sharded = latest_checkpoint(out) / "state" / fsdp.FOLDER
    assert sorted(p.suffix for p in sharded.iterdir()) == [".json", ".safetensors"]
    # torch.distributed.checkpoint's own format keeps its metadata as a pickle, and its shards as pickles too
    shutil.rmtree(out / "checkpoint-2")  # resume from checkpoint-1 and retrain step 2
    checkpoint_1 = latest_checkpoint(out) / "state" / fsdp.FOLDER
    for name in (".metadata", "__0_0.distcp"):
        (checkpoint_1 / name).write_bytes(pickle.dumps(Payload(marker)))
    assert _sharded_trainer(out, folder, resume=True).train().global_step == straight.global_step
    assert not marker.exists()
    resumed = load_file(out / "model.safetensors")
    assert all(torch.equal(resumed[k], weights[k]) for k in weights)  # and the resume is exact

    (checkpoint_1 / fsdp.PARAM_GROUPS).unlink()  # a checkpoint of the old (pickled) format is refused
    shutil.rmtree(out / "checkpoint-2")
    with pytest.raises(ConfigError, match="pickled metadata is not loaded"):
        _sharded_trainer(out, folder, resume=True).train()
    assert not marker.exists()
