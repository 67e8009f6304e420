"""Minimal safetensors writer and header reader (numpy only).

Owns: ``write_safetensors`` (atomic write of a name -> ndarray mapping plus
optional string metadata) and ``read_safetensors_header`` (parse and validate
the JSON header of an existing file without loading tensor data).

File layout (per the safetensors format description):

* 8 bytes: little-endian u64 ``N``, the length of the JSON header;
* ``N`` bytes: UTF-8 JSON object ``{name: {"dtype", "shape", "data_offsets"},
  "__metadata__": {str: str}}``, padded with spaces so the data buffer starts
  on an 8-byte boundary;
* the data buffer: every tensor, C order, little-endian, back to back with no
  holes; ``data_offsets`` are ``[begin, end)`` relative to the buffer start.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from ...atomic import atomic_file

__all__ = [
    "DTYPE_NAMES",
    "SafetensorsError",
    "read_safetensors_header",
    "write_safetensors",
    "write_safetensors_stream",
]

# numpy dtype -> safetensors dtype string (BF16/F8 have no numpy dtype).
DTYPE_NAMES: dict[np.dtype, str] = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint64): "U64",
    np.dtype(np.uint32): "U32",
    np.dtype(np.uint16): "U16",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}

# Bytes per element for every dtype string a reader may meet.
_ITEM_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1,
    "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}

# Guard against absurd header sizes in corrupt files (the reference reader uses 100 MB).
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """Raised for tensors that cannot be written or files that are not valid safetensors."""


def _prepare(name: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    # Returns (dtype string, C-contiguous little-endian array).
    if not isinstance(name, str) or not name or name == "__metadata__":
        raise SafetensorsError(f"invalid tensor name {name!r}")
    arr = np.asarray(array)
    key = arr.dtype.newbyteorder("=") if arr.dtype.byteorder not in ("=", "|") else arr.dtype
    dtype_name = DTYPE_NAMES.get(np.dtype(key))
    if dtype_name is None:
        raise SafetensorsError(f"tensor {name!r}: unsupported dtype {arr.dtype}")
    # Safetensors data is little-endian whatever the host order is; astype keeps 0-d
    # arrays 0-d (np.ascontiguousarray would turn them into shape [1]).
    arr = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)
    return dtype_name, arr


def write_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``tensors`` to ``path`` as safetensors, atomically (tmp file + rename).

    Tensors are stored by descending element size, then by name, so every
    tensor starts on a multiple of its own element size. Returns the path.
    """
    path = Path(path)
    prepared = {name: _prepare(name, arr) for name, arr in tensors.items()}
    # Bigger elements first keeps each tensor naturally aligned without padding holes.
    order = sorted(prepared, key=lambda n: (-prepared[n][1].itemsize, n))

    header: dict[str, object] = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise SafetensorsError("metadata keys and values must be str")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name in order:
        dtype_name, arr = prepared[name]
        header[name] = {
            "dtype": dtype_name,
            "shape": [int(d) for d in arr.shape],
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes

    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # Pad with spaces so the data buffer starts 8-byte aligned (8-byte length prefix + header).
    header_bytes += b" " * (-len(header_bytes) % 8)

    # Readers never see a half-written file: it is renamed into place once complete.
    with atomic_file(path) as fh:
        fh.write(struct.pack("<Q", len(header_bytes)))
        fh.write(header_bytes)
        for name in order:
            # A flat uint8 view writes without copying (also for 0-d and empty tensors).
            fh.write(prepared[name][1].reshape(-1).view(np.uint8).data)
    return path


def write_safetensors_stream(
    path: str | os.PathLike[str],
    tensors: Iterable[tuple[str, np.dtype, tuple[int, ...]]],
    produce: Callable[[str, np.dtype, tuple[int, ...]], np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a safetensors file whose tensors are made one at a time by ``produce(name, dtype, shape)``.

    For multi-gigabyte files (full-size checkpoints): only one tensor is in memory at once. The layout is the
    same as ``write_safetensors`` (bigger elements first, then by name), and the write is atomic.
    """
    path = Path(path)
    specs = {name: (np.dtype(dtype), tuple(int(d) for d in shape)) for name, dtype, shape in tensors}
    order = sorted(specs, key=lambda n: (-specs[n][0].itemsize, n))
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name in order:
        dtype, shape = specs[name]
        if dtype not in DTYPE_NAMES:
            raise SafetensorsError(f"tensor {name!r}: unsupported dtype {dtype}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with atomic_file(path) as fh:
        fh.write(struct.pack("<Q", len(header_bytes)))
        fh.write(header_bytes)
        for name in order:
            dtype, shape = specs[name]
            arr = np.asarray(produce(name, dtype, shape))
            if arr.shape != shape or arr.dtype != dtype:
                raise SafetensorsError(f"tensor {name!r}: made {arr.dtype}{arr.shape}, declared {dtype}{shape}")
            fh.write(arr.astype(dtype.newbyteorder("<"), copy=False).reshape(-1).view(np.uint8).data)
    return path


def read_safetensors_header(path: str | os.PathLike[str]) -> dict:
    """Return the parsed JSON header of a safetensors file (``__metadata__`` included).

    Validates the length prefix, the JSON, every dtype/shape/offset pair and
    that the data buffer is fully covered with no holes or overlaps; raises
    ``SafetensorsError`` otherwise. Tensor data is never read.
    """
    path = Path(path)
    file_size = path.stat().st_size
    with path.open("rb") as fh:
        prefix = fh.read(8)
        if len(prefix) != 8:
            raise SafetensorsError(f"{path}: file too short for a safetensors header")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len < 2 or header_len > _MAX_HEADER or 8 + header_len > file_size:
            raise SafetensorsError(f"{path}: invalid header length {header_len}")
        raw = fh.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"{path}: header is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")

    metadata = header.get("__metadata__")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise SafetensorsError(f"{path}: __metadata__ must map str to str")

    buffer_size = file_size - 8 - header_len
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = info["dtype"]
            shape = [int(d) for d in info["shape"]]
            begin, end = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: malformed entry for tensor {name!r}") from None
        if dtype not in _ITEM_SIZES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}")
        if any(d < 0 for d in shape) or not 0 <= begin <= end <= buffer_size:
            raise SafetensorsError(f"{path}: tensor {name!r} has invalid shape/offsets")
        if int(np.prod(shape, dtype=np.int64)) * _ITEM_SIZES[dtype] != end - begin:
            raise SafetensorsError(f"{path}: tensor {name!r} size does not match its shape")
        spans.append((begin, end, name))

    # The format forbids holes and overlaps: spans must tile [0, buffer_size).
    cursor = 0
    for begin, end, name in sorted(spans):
        if begin != cursor:
            raise SafetensorsError(f"{path}: data buffer hole or overlap at tensor {name!r}")
        cursor = end
    if cursor != buffer_size:
        raise SafetensorsError(f"{path}: data buffer has {buffer_size - cursor} trailing bytes")
    return header
