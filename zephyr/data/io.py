"""Read rows from JSONL / JSON / Parquet / CSV files or a Hugging Face dataset id; write JSONL/JSON/Parquet
whole (`write_rows`, atomic) or append to a resumable JSONL output (`appending`, `finished_rows`).

Every row comes with a `Where` (file + 1-based line for JSONL/CSV, file + row index for JSON/Parquet/hub) so
that a bad row can be reported precisely. The line-based formats are parsed here rather than through
`datasets` because its Arrow JSON/CSV readers report a malformed line as an Arrow error without the line.
A line that is not valid JSON is yielded as a DataError (not raised) so the caller can skip and count it.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tqdm.auto import tqdm

from ..errors import DataError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
# CSV cells cannot hold lists, so nested columns are stored as JSON text; these are decoded back.
NESTED_CSV_COLUMNS = ("messages", "prompt", "chosen", "rejected", "completions", "metadata")


@dataclass(frozen=True)
class Where:
    """Where a row came from: `number` is a 1-based line (JSONL, CSV) or a 0-based row index (JSON, Parquet, hub)."""

    path: str
    number: int
    kind: str = "line"  # "line" or "row"

    def error(self, problem: str, field: str | None = None) -> DataError:
        err = DataError(problem, self.path, self.number, field)
        if self.kind == "row":  # "file:3" would read as a line number; say "row 3" instead
            what = f"field '{field}': " if field else ""
            err.args = (f"{self.path} (row {self.number}): {what}{problem}",)
        return err


def progress(items: Iterable, desc: str, total: int | None = None, unit: str = "row") -> Iterable:
    """A tqdm bar on stderr, hidden when stderr is not a terminal (logs, tests)."""
    return tqdm(items, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True)


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"unsupported file type '{suffix}' (use .jsonl, .json, .parquet or .csv)", str(path))
    return FORMATS[suffix]


def read_rows(path: str | Path) -> Iterator[tuple[Where, Any]]:
    """Yield (where, row) for every row of a local file; a row that cannot be parsed is yielded as a DataError."""
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise DataError("file not found", str(path))
    reader = {"jsonl": _read_jsonl, "json": _read_json, "parquet": _read_parquet, "csv": _read_csv}[fmt]
    yield from reader(path)


def read_objects(path: str | Path) -> Iterator[tuple[Where, dict]]:
    """Yield (where, row) for every row of a local file, each a JSON object; the first row that is malformed or
    not an object raises a DataError naming the file, line and problem."""
    for where, row in read_rows(path):
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise where.error("each line must be a JSON object")
        yield where, row


def _read_jsonl(path: Path) -> Iterator[tuple[Where, Any]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = Where(str(path), number)
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                yield where, where.error(f"not valid JSON ({err.msg} at column {err.colno})")


def _read_json(path: Path) -> Iterator[tuple[Where, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # `datasets.Dataset.to_json` writes JSON lines under a .json name
            yield from _read_jsonl(path)
            return
        raise DataError(f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})", str(path),
                        err.lineno) from None
    if isinstance(data, dict):  # {"data": [...]} style wrappers: exactly one list of rows inside
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) != 1:
            raise DataError("a JSON file must hold a list of rows (or an object with exactly one list)", str(path))
        data = lists[0]
    if not isinstance(data, list):
        raise DataError("a JSON file must hold a list of rows", str(path))
    for index, row in enumerate(data):
        yield Where(str(path), index, "row"), row


def _read_parquet(path: Path) -> Iterator[tuple[Where, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a corrupt or non-parquet file
        raise DataError(f"not a readable Parquet file ({err})", str(path)) from None
    index = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield Where(str(path), index, "row"), row
            index += 1


def _read_csv(path: Path) -> Iterator[tuple[Where, Any]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long assistant replies exceed the 128 KiB default
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        end_of_previous = reader.line_num
        for cells in reader:
            where = Where(str(path), end_of_previous + 1)  # a quoted cell may span lines: report where it starts
            end_of_previous = reader.line_num
            if not cells:
                continue
            if len(cells) != len(header):
                yield where, where.error(f"has {len(cells)} cells but the header has {len(header)}")
                continue
            yield where, {name: _decode_cell(name, value) for name, value in zip(header, cells)}


def _decode_cell(name: str, value: str) -> Any:
    if name in NESTED_CSV_COLUMNS and value[:1] in "[{":
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        # only structured data is decoded: a reply that happens to be "[1, 2]" stays text
        if isinstance(decoded, dict) or (isinstance(decoded, list) and all(isinstance(x, dict) for x in decoded)):
            return decoded
    return value


def read_hub(dataset_id: str, split: str, config: str | None = None, revision: str | None = None
             ) -> Iterator[tuple[Where, Any]]:
    """Rows of one split of a Hugging Face dataset (`datasets.load_dataset`); errors name the id and split.

    A split the dataset does not have raises `MissingSplit`, so that the mixer can skip optional splits.
    """
    import datasets

    try:
        dataset = datasets.load_dataset(dataset_id, config, split=split, revision=revision)
    except ValueError as err:
        if "split" in str(err).lower() and split in str(err):
            raise MissingSplit(dataset_id, split) from None
        raise DataError(f"cannot load split '{split}': {err}", dataset_id) from None
    except Exception as err:  # offline, unknown id, gated: the hub's errors are many; say which source failed
        raise DataError(f"not a local file or folder, and split '{split}' cannot be loaded from the Hugging Face "
                        f"Hub: {type(err).__name__}: {err}", dataset_id) from None
    name = f"{dataset_id}@{split}"
    for index, row in enumerate(dataset):
        yield Where(name, index, "row"), row


class MissingSplit(LookupError):
    def __init__(self, source: str, split: str):
        super().__init__(f"{source} has no split '{split}'")
        self.source, self.split = source, split


def write_rows(rows: Iterable[dict], path: str | Path) -> int:
    """Write rows as JSONL (default), JSON or Parquet, chosen by the file extension; returns the row count.

    Written to a temporary name and renamed at the end, so a run stopped by a bad row leaves no partial file.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower(), "jsonl")
    if fmt == "csv":
        raise DataError("writing CSV is not supported (nested columns); use .jsonl, .json or .parquet", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            rows = list(rows)
            pq.write_table(pa.Table.from_pylist(rows), partial)
            count = len(rows)
        elif fmt == "json":
            rows = list(rows)
            partial.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
            count = len(rows)
        else:
            count = 0
            with open(partial, "w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                    count += 1
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def finished_rows(path: str | Path, key: str = "index") -> set[int]:
    """The `key` of every complete row of a resumable JSONL output; a torn last line (a kill in mid-write, so no
    newline) is cut away so that appending keeps the file valid JSONL. Any other bad line is an error: the rows
    after it are kept, never cut."""
    path = Path(path)
    if not path.exists():
        return set()
    done, good_bytes = set(), 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                done.add(int(json.loads(raw)[key]))
            except (ValueError, KeyError, TypeError) as err:
                if raw.endswith(b"\n"):
                    raise DataError(f"not a finished row with '{key}' ({err}); fix or remove the line to resume",
                                    str(path), number) from err
                break
            good_bytes += len(raw)
    if good_bytes < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return done


@contextmanager
def appending(path: str | Path) -> Iterator[Callable[[Iterable[dict]], None]]:
    """`with appending(path) as append: append(rows)`: each call adds the rows as JSONL lines and fsyncs them,
    so a kill loses at most the call in progress (whose torn line `finished_rows` removes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        def append(rows: Iterable[dict]) -> None:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            handle.flush()
            os.fsync(handle.fileno())

        yield append
