"""Helpers for the data-layer tests: write hand-made rows in every supported file format."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest


def write(path: Path, rows: list, fmt: str | None = None) -> Path:
    """Rows -> .jsonl / .json / .parquet / .csv (nested CSV cells as JSON text, as people store them)."""
    fmt = fmt or path.suffix.lstrip(".")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "csv":
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for r in rows:
                writer.writerow([json.dumps(r[c]) if isinstance(r.get(c), (list, dict)) else r.get(c, "")
                                 for c in columns])
    else:
        raise ValueError(fmt)
    return path


def chat(i: int, turns: int = 1) -> dict:
    messages = []
    for t in range(turns):
        messages += [{"role": "user", "content": f"Question {i}.{t} about topic {i}?"},
                     {"role": "assistant", "content": f"Answer {i}.{t}."}]
    return {"prompt": messages[0]["content"], "prompt_id": f"id{i}", "messages": messages}


def rating(value) -> dict:
    return {"Rating": value, "Rationale": "..."}


def completion(response: str, ratings: list) -> dict:
    aspects = ("instruction_following", "honesty", "truthfulness", "helpfulness")
    return {"model": "m", "response": response, "annotations": {a: rating(r) for a, r in zip(aspects, ratings)}}


@pytest.fixture
def make():
    """make.write(path, rows), make.chat(i, turns), make.completion(response, ratings)."""
    return SimpleNamespace(write=write, chat=chat, completion=completion)
