"""Importance matrices: llama-imatrix's two file formats are read to per-column mean squares, and the array
handed to llama_model_quantize carries every entry and ends with a NULL name."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from zephyr.errors import DataError
from zephyr.quantize.imatrix import load_imatrix


def test_legacy_dat_values_are_divided_by_the_call_count(tmp_path):
    # llama-imatrix's legacy layout: entries, then per entry name length, name, ncall, nval, values
    name = b"blk.0.attn_q.weight"
    data = struct.pack("<i", 2)
    data += struct.pack("<i", len(name)) + name + struct.pack("<ii", 4, 3) + struct.pack("<3f", 4.0, 8.0, 2.0)
    data += struct.pack("<i", 3) + b"foo" + struct.pack("<ii", 0, 2) + struct.pack("<2f", 1.5, 2.5)
    data += struct.pack("<i", 10)  # last call count, as llama-imatrix appends; not read
    path = tmp_path / "imatrix.dat"
    path.write_bytes(data)
    loaded = load_imatrix(path)
    assert list(loaded) == ["blk.0.attn_q.weight", "foo"]
    np.testing.assert_allclose(loaded["blk.0.attn_q.weight"], [1.0, 2.0, 0.5])
    np.testing.assert_allclose(loaded["foo"], [1.5, 2.5])  # ncall 0: kept as they are


def test_truncated_legacy_file_is_a_data_error(tmp_path):
    path = tmp_path / "imatrix.dat"
    path.write_bytes(struct.pack("<i", 1) + struct.pack("<i", 40) + b"blk")
    with pytest.raises(DataError, match="imatrix.dat: truncated"):
        load_imatrix(path)


def test_gguf_imatrix_sums_are_divided_by_counts(tmp_path):
    import gguf

    path = tmp_path / "imatrix.gguf"
    writer = gguf.GGUFWriter(str(path), "imatrix")
    writer.add_tensor("blk.0.ffn_up.weight.in_sum2", np.array([[3.0, 6.0, 9.0]], dtype=np.float32))
    writer.add_tensor("blk.0.ffn_up.weight.counts", np.array([[3.0]], dtype=np.float32))
    writer.add_tensor("blk.1.ffn_up.weight.in_sum2", np.array([[2.0, 4.0]], dtype=np.float32))
    writer.add_tensor("blk.1.ffn_up.weight.counts", np.array([[2.0]], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    loaded = load_imatrix(path)
    np.testing.assert_allclose(loaded["blk.0.ffn_up.weight"], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(loaded["blk.1.ffn_up.weight"], [1.0, 2.0])


def test_c_array_is_null_terminated_and_points_at_the_values():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (zephyr[gguf])")
    from zephyr.quantize.imatrix import CImatrix

    entries = CImatrix({"a.weight": np.array([1.0, 2.0]), "b.weight": np.array([3.0, 4.0, 5.0])})
    array = entries.array
    assert [array[0].name, array[1].name, array[2].name] == [b"a.weight", b"b.weight", None]
    assert (array[1].size, [array[1].data[i] for i in range(3)]) == (3, [3.0, 4.0, 5.0])
