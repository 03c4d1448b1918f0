"""data/io.py on bad bytes, repeated keys, wrong paths, a resumable output with a foreign line, and a full disk."""

from __future__ import annotations

import errno
import json

import pytest

import zephyr.data.io as data_io
from zephyr.cli import main as cli
from zephyr.data.io import appending, finished_rows, read_objects, read_rows, write_rows
from zephyr.errors import ConfigError, DataError, DiskFull

ROW = {"prompt": "Name a colour?", "chosen": "Red.", "rejected": "No."}


def rows_of(path):
    return [row for _, row in read_rows(path)]


def test_non_utf8_byte_names_line_and_byte_offsets(tmp_path):
    path = tmp_path / "in.jsonl"
    good = json.dumps(ROW).encode() + b"\n"
    path.write_bytes(good + b'{"prompt": "caf\xe9?", "chosen": "a", "rejected": "b"}\n' + good)
    found = rows_of(path)
    assert found[0] == ROW and found[2] == ROW  # the bad byte spoils only its own line
    assert str(found[1]) == (f"{path}:2: not valid UTF-8: byte 0xe9 at byte 15 of the line (byte "
                             f"{len(good) + 15} of the file); save the file as UTF-8")


def test_non_utf8_in_json_and_csv_files(tmp_path):
    json_path = tmp_path / "in.json"
    json_path.write_bytes(b'[\n {"prompt": "ok"},\n {"prompt": "caf\xe9"}\n]')
    with pytest.raises(DataError, match=r"in.json:3: not valid UTF-8: byte 0xe9 at byte 16 of the line \(byte 37 "):
        rows_of(json_path)
    csv_path = tmp_path / "in.csv"
    csv_path.write_bytes(b"prompt,chosen,rejected\nName?,Red.,No.\nCaf\xe9?,Red.,No.\n")
    found = rows_of(csv_path)
    assert found[0] == {"prompt": "Name?", "chosen": "Red.", "rejected": "No."}
    assert str(found[1]) == (f"{csv_path}:3: field 'prompt': not valid UTF-8: byte 0xe9 at byte 3 of the cell; "
                             "save the file as UTF-8")


def test_a_byte_order_mark_is_not_an_error(tmp_path):
    for name in ("in.jsonl", "in.json", "in.csv"):
        path = tmp_path / name
        body = {"in.jsonl": json.dumps(ROW) + "\n", "in.json": json.dumps([ROW]),
                "in.csv": "prompt,chosen,rejected\nName a colour?,Red.,No.\n"}[name]
        path.write_bytes(b"\xef\xbb\xbf" + body.encode())
        assert rows_of(path) == [ROW]


def test_a_repeated_key_is_an_error_naming_it(tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps(ROW) + "\n" + '{"prompt": "a", "chosen": "b", "rejected": "c", "chosen": "d"}\n')
    assert str(rows_of(jsonl)[1]) == (f"{jsonl}:2: field 'chosen': appears twice in one JSON object (which value "
                                      "is meant?)")
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"messages": [{"role": "user", "role": "assistant", "content": "x"}]}\n')
    assert "nested.jsonl:1: field 'role': appears twice" in str(rows_of(nested)[0])
    whole = tmp_path / "in.json"
    whole.write_text(json.dumps([ROW, ROW])[:-1] + ', {"prompt": "a", "prompt": "b"}]')
    with pytest.raises(DataError, match=r"in.json \(row 2\): field 'prompt': appears twice"):
        rows_of(whole)
    table = tmp_path / "in.csv"
    table.write_text('prompt,chosen,rejected\n"[{""role"": ""user"", ""role"": ""x"", ""content"": ""a""}]",b,c\n')
    assert "in.csv:2: field 'prompt': its key 'role' appears twice" in str(rows_of(table)[0])


def test_empty_file_and_folder_are_errors(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "folder.jsonl").mkdir()
    for name, problem in (("empty.jsonl", "holds no rows"), ("empty.json", "holds no rows"),
                          ("folder.jsonl", "is a folder; give a data file")):
        with pytest.raises(DataError, match=problem):
            list(read_objects(tmp_path / name))


def test_output_paths_that_are_folders_or_under_a_file(tmp_path):
    (tmp_path / "out.jsonl").mkdir()
    with pytest.raises(ConfigError, match="out.jsonl is a folder; give a file name"):
        write_rows([ROW], tmp_path / "out.jsonl")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="file is a file, not a folder"):
        write_rows([ROW], tmp_path / "file" / "sub" / "out.jsonl")


def test_resuming_refuses_a_valid_line_without_index_and_keeps_every_row(tmp_path):
    path = tmp_path / "out.jsonl"
    for tail in ('{"reply": "no index"}\n{"index": 2}\n', '{"reply": "no index, no newline"}'):
        text = '{"index": 0}\n{"index": 1}\n' + tail
        path.write_text(text)
        with pytest.raises(DataError, match=r"out.jsonl:3: field 'index': missing or not an integer"):
            finished_rows(path)
        assert path.read_text() == text  # nothing cut
    path.write_text('{"index": 0}\n{"index": 1}\n{"index": 2, "rep')  # a torn last line is still cut
    assert finished_rows(path) == {0, 1} and path.read_text() == '{"index": 0}\n{"index": 1}\n'
    path.write_text('{"index": 0}\n{"index": 1}')  # complete but its newline missing: regenerated, not glued on
    assert finished_rows(path) == {0} and path.read_text() == '{"index": 0}\n'


class FullDisk:
    """A file object whose writes fail with ENOSPC once `room` bytes are written."""

    def __init__(self, handle, room):
        self.handle, self.room = handle, room

    def write(self, text):
        if len(text) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(text)
        return self.handle.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __iter__(self):
        return iter(self.handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def full_disk_after(monkeypatch, room):
    monkeypatch.setattr(data_io, "open", lambda *a, **k: FullDisk(open(*a, **k), room), raising=False)


def test_full_disk_in_write_rows_keeps_the_earlier_file(tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    out.write_text("earlier\n")
    full_disk_after(monkeypatch, 100)
    with pytest.raises(DiskFull, match=rf"no space left on {out} \(the disk is full, errno 28\): nothing was "
                                       r"written; the earlier file there is unchanged; free some space"):
        write_rows([ROW] * 10, out)
    assert out.read_text() == "earlier\n" and list(tmp_path.iterdir()) == [out]  # no .partial left behind


def test_full_disk_in_appending_keeps_the_rows_written_before(tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    full_disk_after(monkeypatch, 40)
    with pytest.raises(DiskFull, match="the rows written before are kept"):
        with appending(out) as append:
            append([{"index": 0}, {"index": 1}])
            append([{"index": 2, "reply": "a long reply that does not fit"}])
    assert finished_rows(out) == {0, 1}


def test_full_disk_in_a_data_command_exits_2(tmp_path, monkeypatch, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Hi {i}?"},
                                                       {"role": "assistant", "content": "Hello."}]}) + "\n"
                              for i in range(20)))
    full_disk_after(monkeypatch, 500)
    assert cli(["data", "filter", str(source), str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"no space left on {tmp_path / 'out.jsonl'}" in err and "Traceback" not in err
