"""Regression tests for the restricted CIFAR-10 unpickler (found in review)."""

import pickle
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from topo_neurons.experiments.data._files import _read_cifar_batch


def _binstring(b: bytes) -> bytes:
    return b"T" + struct.pack("<I", len(b)) + b


def _doctored_batch(dtype_code: bytes, flags: int, raw: bytes, n: int) -> bytes:
    """A protocol-2 batch whose b'data' is an array of ``dtype_code`` with the dtype's state
    flags set to ``flags``: numpy's own rebuilders build it over the raw bytes."""
    arr = (
        b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87R"
        b"(K\x01K" + bytes([n]) + b"\x85cnumpy\ndtype\nU" + bytes([len(dtype_code)]) + dtype_code
        + b"K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK"
        + bytes([flags]) + b"tb\x89" + _binstring(raw) + b"tb"
    )  # fmt: skip
    return b"\x80\x02}(U\x04data" + arr + b"U\x06labels](K\x01eu."


def test_object_dtype_with_forged_flags_is_refused_and_never_built(tmp_path):
    # An object array over raw bytes (pointers 0x4141…) with the refcount flag: numpy's
    # _reconstruct builds it and freeing it dereferences the forged pointers (a crash).
    path = tmp_path / "data_batch_1"
    path.write_bytes(_doctored_batch(b"O8", 1, struct.pack("<Q", 0x4141414141414141) * 2, 2))
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from topo_neurons.experiments.data._files import _read_cifar_batch
        try:
            _read_cifar_batch(Path({str(path)!r}))
        except ValueError as exc:
            print("ValueError:", exc)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    assert "ValueError:" in res.stdout and "refused" in res.stdout and "dtype('O')" in res.stdout


def test_numeric_array_is_rebuilt_with_a_clean_dtype(tmp_path):
    # A uint8 dtype whose state claims object flags: the array gets a fresh uint8 dtype.
    raw = bytes(range(256)) * 12
    path = tmp_path / "data_batch_1"
    path.write_bytes(
        _doctored_batch(b"u1", 63, raw, 1).replace(b"K\x01\x85", b"K\x01M\x00\x0c\x86")
    )
    X, y = _read_cifar_batch(path)
    ref = np.frombuffer(raw, np.uint8).reshape(1, 3, 32, 32).astype(np.float32) / 255.0
    np.testing.assert_array_equal(X, ref)
    assert y.tolist() == [1]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_fortran_ordered_data_loads_as_written(tmp_path, protocol):
    data = np.asfortranarray(np.arange(2 * 3072, dtype=np.uint64).reshape(2, 3072) % 251)
    data = np.asfortranarray(data.astype(np.uint8))
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=protocol))
    X, y = _read_cifar_batch(path)
    np.testing.assert_array_equal(X.reshape(2, -1), data.astype(np.float32) / 255.0)
    assert y.tolist() == [3, 4]
