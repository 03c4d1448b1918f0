"""Read rows from JSONL / JSON / Parquet / CSV files or a Hugging Face dataset id; write JSONL/JSON/Parquet
whole (`write_rows`, atomic) or append to a resumable JSONL output (`appending`, `finished_rows`).

Every row comes with a `Where` (file + 1-based line for JSONL/CSV, file + row index for JSON/Parquet/hub) so
that a bad row can be reported precisely. The line-based formats are parsed here rather than through
`datasets` because its Arrow JSON/CSV readers report a malformed line as an Arrow error without the line.
A line that is not valid JSON, not valid UTF-8 (the message gives the byte offset), or that holds an object
naming one key twice is yielded as a DataError (not raised) so the caller can skip and count it. Every JSON
text is parsed by `loads`, which rejects a repeated key: with `json.loads` the last value would silently win.
A full disk while writing raises `DiskFull` naming the file; what was written before stays.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tqdm.auto import tqdm

from ..errors import ConfigError, DataError, DiskFull

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
# CSV cells cannot hold lists, so nested columns are stored as JSON text; these are decoded back.
NESTED_CSV_COLUMNS = ("messages", "prompt", "chosen", "rejected", "completions", "metadata")
BOM = b"\xef\xbb\xbf"  # the UTF-8 byte-order mark some Windows tools put first


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


class DuplicateKey(ValueError):
    """A JSON object names the same key twice."""

    def __init__(self, key: str):
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    row = dict(pairs)
    if len(row) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return row


def loads(text: str | bytes) -> Any:
    """`json.loads` that raises DuplicateKey for an object naming one key twice."""
    return json.loads(text, object_pairs_hook=_unique_keys)


DUPLICATE = "appears twice in one JSON object (which value is meant?)"


def not_utf8(err: UnicodeDecodeError, line_start: int = 0) -> str:
    """The problem text of a decode error; `err.start` counts from `line_start`, the line's offset in the file."""
    byte = err.object[err.start:err.start + 1].hex()
    return (f"not valid UTF-8: byte 0x{byte} at byte {err.start} of the line (byte {line_start + err.start} of the "
            f"file); save the file as UTF-8")


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
    if path.is_dir():
        raise DataError("is a folder; give a data file", str(path))
    if not path.is_file():
        raise DataError("file not found", str(path))
    reader = {"jsonl": _read_jsonl, "json": _read_json, "parquet": _read_parquet, "csv": _read_csv}[fmt]
    empty = True
    for item in reader(path):
        empty = False
        yield item
    if empty:
        raise DataError("holds no rows (the file is empty)", str(path))


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
    """Lines are read as bytes and decoded one by one, so that a bad byte spoils only its own line."""
    offset = 0  # of the current line in the file
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            if number == 1 and raw.startswith(BOM):
                raw, start = raw[len(BOM):], start + len(BOM)
            if not raw.strip():
                continue
            where = Where(str(path), number)
            try:
                yield where, loads(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                yield where, where.error(not_utf8(err, start))
            except DuplicateKey as err:
                yield where, where.error(DUPLICATE, err.key)
            except json.JSONDecodeError as err:
                yield where, where.error(f"not valid JSON ({err.msg} at column {err.colno})")


def _read_json(path: Path) -> Iterator[tuple[Where, Any]]:
    raw = path.read_bytes().removeprefix(BOM)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        err.object, err.start = raw[line_start:], err.start - line_start
        raise DataError(not_utf8(err, line_start), str(path), line) from None
    try:
        data = loads(text)
    except DuplicateKey as err:
        raise _locate_duplicate(path, text, err.key) from None
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


class _Repeated(dict):
    """An object that named `key` twice (only while locating a duplicate key in a .json file)."""

    key = ""


def _mark_repeated(pairs: list[tuple[str, Any]]) -> dict:
    try:
        return _unique_keys(pairs)
    except DuplicateKey as err:
        marked = _Repeated(pairs)
        marked.key = err.key
        return marked


def _locate_duplicate(path: Path, text: str, key: str) -> DataError:
    """The row of a .json file holding an object with a repeated key (searched only once one is known)."""

    def repeated(value: Any) -> bool:
        if isinstance(value, _Repeated):
            return True
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        return any(repeated(child) for child in children)

    data = json.loads(text, object_pairs_hook=_mark_repeated)
    if isinstance(data, dict) and not isinstance(data, _Repeated):
        data = next((value for value in data.values() if isinstance(value, list) and repeated(value)), data)
    if isinstance(data, list):
        for index, row in enumerate(data):
            if repeated(row):
                return Where(str(path), index, "row").error(DUPLICATE, key)
    return DataError(DUPLICATE, str(path), field=key)


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
    """A byte that is not UTF-8 is kept as a lone surrogate (`surrogateescape`) and reported with its cell."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long assistant replies exceed the 128 KiB default
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        bad = _bad_cell(header)
        if bad is not None:
            yield Where(str(path), 1), Where(str(path), 1).error(bad[1], f"header cell {bad[0] + 1}")
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
            bad = _bad_cell(cells)
            if bad is not None:
                yield where, where.error(bad[1], header[bad[0]])
                continue
            row = {}
            for name, value in zip(header, cells):
                try:
                    row[name] = _decode_cell(name, value)
                except DuplicateKey as err:
                    yield where, where.error(f"its key {err.key!r} {DUPLICATE}", name)
                    break
            else:
                yield where, row


def _bad_cell(cells: list[str]) -> tuple[int, str] | None:
    """(column, problem) of the first cell holding a byte that is not UTF-8, else None."""
    for column, cell in enumerate(cells):
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError as err:
            offset = len(cell[:err.start].encode("utf-8", "surrogateescape"))
            byte = cell[err.start].encode("utf-8", "surrogateescape").hex()
            return column, f"not valid UTF-8: byte 0x{byte} at byte {offset} of the cell; save the file as UTF-8"
    return None


def _decode_cell(name: str, value: str) -> Any:
    if name in NESTED_CSV_COLUMNS and value[:1] in "[{":
        try:
            decoded = loads(value)  # a repeated key raises DuplicateKey, reported with the row
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


def check_output_file(path: str | Path, field: str | None = None) -> Path:
    """An output file name: not an existing folder, and every existing parent a folder (ConfigError otherwise,
    naming `field` when given)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{_field(field)}{path} is a folder; give a file name (e.g. {path / 'out.jsonl'})")
    check_output_folder(path.parent, field)
    return path


def check_output_folder(path: str | Path, field: str | None = None) -> Path:
    """An output folder: it, and every existing parent, is a folder or does not exist yet."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"{_field(field)}{folder} is a file, not a folder; choose another path")
            break
    return path


def _field(name: str | None) -> str:
    return f"--{name}: " if name else ""


@contextmanager
def disk_full_is_reported(path: str | Path, kept: str) -> Iterator[None]:
    """Turn ENOSPC while writing `path` into DiskFull saying what is `kept`."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(str(path), kept) from None
        raise


def write_rows(rows: Iterable[dict], path: str | Path) -> int:
    """Write rows as JSONL (default), JSON or Parquet, chosen by the file extension; returns the row count.

    Written to a temporary name and renamed at the end, so a run stopped by a bad row or a full disk leaves no
    partial file, and an earlier file at `path` stays as it was.
    """
    path = check_output_file(path)
    fmt = FORMATS.get(path.suffix.lower(), "jsonl")
    if fmt == "csv":
        raise DataError("writing CSV is not supported (nested columns); use .jsonl, .json or .parquet", str(path))
    partial = path.with_name(path.name + ".partial")
    kept = "nothing was written; " + ("the earlier file there is unchanged" if path.exists() else "no file made")
    try:
        with disk_full_is_reported(path, kept):
            path.parent.mkdir(parents=True, exist_ok=True)
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
    """The `key` of every complete row of a resumable JSONL output; a torn last line (a kill in mid-write: no
    newline, and not valid JSON) is cut away so that appending keeps the file valid JSONL. Any other bad line,
    a valid JSON line without `key` included, is an error: no row is ever cut."""
    path = check_output_file(path)
    if not path.exists():
        return set()
    done, good_bytes = set(), 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                row = loads(raw)
            except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError and DuplicateKey are ValueErrors
                if raw.endswith(b"\n"):
                    raise DataError(f"not a finished row ({err}); fix or remove the line to resume",
                                    str(path), number) from None
                break
            value = row.get(key) if isinstance(row, dict) else None
            if isinstance(value, bool) or not isinstance(value, int):
                raise DataError(f"missing or not an integer in a row of this output ({str(row)[:60]}...): is it "
                                f"the output of this command? Fix or remove the line to resume, or pass another "
                                f"output file", str(path), number, key)
            if not raw.endswith(b"\n"):  # complete but its newline was not written: regenerated, not patched
                break
            done.add(value)
            good_bytes += len(raw)
    if good_bytes < path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return done


@contextmanager
def appending(path: str | Path) -> Iterator[Callable[[Iterable[dict]], None]]:
    """`with appending(path) as append: append(rows)`: each call adds the rows as JSONL lines and fsyncs them,
    so a kill loses at most the call in progress (whose torn line `finished_rows` removes). A full disk raises
    DiskFull; the rows of earlier calls stay."""
    path = check_output_file(path)
    kept = "the rows written before are kept, and the next run resumes after them"
    # also around open/close: closing flushes again what a failed write left in the buffer
    with disk_full_is_reported(path, kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            def append(rows: Iterable[dict]) -> None:
                with disk_full_is_reported(path, kept):
                    handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
                    handle.flush()
                    os.fsync(handle.fileno())

            yield append
