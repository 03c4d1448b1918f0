"""report_to: names checked before anything loads; jsonl, tensorboard and wandb (offline) receive the records."""

from __future__ import annotations

import json

import pytest

from zephyr.errors import ConfigError
from zephyr.train import metrics_log
from zephyr.train.metrics_log import MetricsLog, check_report_to, read_metrics

RECORDS = [{"step": 1, "epoch": 0.5, "loss": 2.5, "learning_rate": 1e-4, "grad_norm": 0.75},
           {"step": 2, "epoch": 1.0, "loss": 2.25, "learning_rate": 5e-5, "grad_norm": float("nan")},
           {"step": 2, "epoch": 1.0, "eval_loss": 2.125, "eval_rewards/accuracies": 0.625}]


def test_names_none_all_and_what_to_install(monkeypatch):
    assert check_report_to("none") == [] == check_report_to([]) == check_report_to(["none"])
    assert check_report_to(["jsonl", "jsonl"]) == ["jsonl"]
    with pytest.raises(ConfigError, match="unknown 'mlflow'; choose from none, jsonl, tensorboard, wandb, all"):
        check_report_to(["jsonl", "mlflow"])
    with pytest.raises(ConfigError, match="'none' cannot be combined"):
        check_report_to(["none", "jsonl"])
    monkeypatch.setattr(metrics_log, "installed", lambda name: name == "jsonl")
    assert check_report_to("all") == ["jsonl"]
    with pytest.raises(ConfigError, match=r"wandb is not installed; pip install wandb \(or pip install "
                                          r"\"zephyr\[track\]\"\)"):
        check_report_to(["jsonl", "wandb"])
    with pytest.raises(ConfigError, match="tensorboard and wandb are not installed; pip install tensorboard wandb"):
        MetricsLog("unused", ["tensorboard", "wandb"])
    monkeypatch.setattr(metrics_log, "installed", lambda name: True)
    assert check_report_to(["all"]) == ["jsonl", "tensorboard", "wandb"]


def test_jsonl_only_writes_no_tracker_folders(tmp_path):
    log = MetricsLog(tmp_path, ["jsonl"])
    for record in RECORDS[:1]:
        log.log(record)
    log.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == RECORDS[:1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]
    disabled = MetricsLog(tmp_path / "other", ["jsonl", "tensorboard"], enabled=False)  # a non-main process
    disabled.log(RECORDS[0])
    assert not (tmp_path / "other").exists()


def test_tensorboard_event_file_holds_the_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLog(tmp_path, ["jsonl", "tensorboard"], config={"learning_rate": 1e-4, "report_to": ["jsonl"]})
    for record in RECORDS:
        log.log(record)
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars["train/loss"] == [(1, 2.5), (2, 2.25)]
    assert scalars["train/grad_norm"] == [(1, 0.75)]  # NaN is not logged
    assert scalars["eval/loss"] == [(2, 2.125)]
    assert scalars["eval/rewards/accuracies"] == [(2, 0.625)]
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 3


def wandb_history(run_file) -> list[dict]:
    """The history rows of an offline run's .wandb file: a LevelDB-style log (7-byte file header, 32 KiB blocks of
    records with a 7-byte header: crc32, length, type 1 full / 2 first / 3 middle / 4 last) of protobuf Records."""
    import struct

    from wandb.proto import wandb_internal_pb2

    raw, position, pending, rows = run_file.read_bytes(), 7, b"", []
    while position + 7 <= len(raw):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", raw[position:position + 7])
        data, position = raw[position + 7:position + 7 + length], position + 7 + length
        pending = data if kind in (1, 2) else pending + data
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
    return rows


def test_wandb_offline_run_receives_the_keys(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    log = MetricsLog(tmp_path, ["wandb"], run_name="tiny-run", config={"learning_rate": 1e-4, "seed": 7})
    for record in RECORDS:
        log.log(record)
    log.close()
    wandb.teardown()  # the wandb-core service writes the run file out before it exits
    assert not (tmp_path / "metrics.jsonl").exists()
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    rows = [{k: v for k, v in row.items() if not k.startswith("_")} for row in wandb_history(run_file)]
    assert rows[0] == {"train/loss": 2.5, "train/learning_rate": 1e-4, "train/grad_norm": 0.75}
    # wandb merges the records logged at one step (train and eval of step 2) into one history row
    assert rows[1] == {"train/loss": 2.25, "train/learning_rate": 5e-5, "eval/loss": 2.125,
                       "eval/rewards/accuracies": 0.625}
    assert len(rows) == 2
