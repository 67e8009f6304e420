"""Minimal GGUF v3 writer and metadata reader (numpy only).

Owns the on-disk GGUF container format for ddtui: ``GGUFWriter`` builds a file
from typed metadata key/values and F32/F16 tensors (used by the synthetic model
generators in this package), and ``read_gguf_metadata`` reads back the header
and key/values of any GGUF file (no tensor data) so the model catalog can
describe LLM/mmproj files without loading them.

Layout written (all little-endian)::

    magic "GGUF" | u32 version=3 | u64 n_tensors | u64 n_kv
    n_kv x   (string key, u32 value type, value)
    n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
    zero padding to `alignment`
    tensor data, each tensor starting at a multiple of `alignment` (offsets are
    relative to the start of the data section) and padded to it

Strings are ``u64 length + UTF-8 bytes`` (no NUL).  Arrays are ``u32 element
type, u64 count, elements``.  Tensor dims are stored in ggml order (fastest
varying first), i.e. the reverse of the numpy shape.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, BinaryIO, Iterable, Sequence

import numpy as np

from ...atomic import atomic_file

__all__ = [
    "GGUF_MAGIC",
    "GGUF_VERSION",
    "GGUF_DEFAULT_ALIGNMENT",
    "GGUFValueType",
    "GGMLType",
    "GGUFError",
    "GGUFArrayInfo",
    "GGUFHeader",
    "GGUFWriter",
    "read_gguf_header",
    "read_gguf_metadata",
    "read_gguf_tensor_infos",
]

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
GGUF_DEFAULT_ALIGNMENT = 32
KEY_ALIGNMENT = "general.alignment"


class GGUFValueType(IntEnum):
    """Metadata value type codes (gguf.h ``enum gguf_type``)."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


class GGMLType(IntEnum):
    """Tensor element types this writer supports (ggml.h ``enum ggml_type``)."""

    F32 = 0
    F16 = 1


class GGUFError(ValueError):
    """Raised for malformed GGUF input (reader) or invalid writer usage."""


# struct format (little-endian) of each fixed-size scalar value type
_SCALAR_FMT: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}

# numpy dtype of each fixed-size scalar type, for bulk array encode/decode
_SCALAR_NP: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<u1",
    GGUFValueType.INT8: "<i1",
    GGUFValueType.UINT16: "<u2",
    GGUFValueType.INT16: "<i2",
    GGUFValueType.UINT32: "<u4",
    GGUFValueType.INT32: "<i4",
    GGUFValueType.FLOAT32: "<f4",
    GGUFValueType.BOOL: "<u1",
    GGUFValueType.UINT64: "<u8",
    GGUFValueType.INT64: "<i8",
    GGUFValueType.FLOAT64: "<f8",
}

# integer ranges, checked up front so struct/numpy never silently wrap
_INT_RANGE: dict[GGUFValueType, tuple[int, int]] = {
    GGUFValueType.UINT8: (0, 2**8 - 1),
    GGUFValueType.INT8: (-(2**7), 2**7 - 1),
    GGUFValueType.UINT16: (0, 2**16 - 1),
    GGUFValueType.INT16: (-(2**15), 2**15 - 1),
    GGUFValueType.UINT32: (0, 2**32 - 1),
    GGUFValueType.INT32: (-(2**31), 2**31 - 1),
    GGUFValueType.UINT64: (0, 2**64 - 1),
    GGUFValueType.INT64: (-(2**63), 2**63 - 1),
}

_GGML_NP: dict[GGMLType, str] = {GGMLType.F32: "<f4", GGMLType.F16: "<f2"}

_GGML_MAX_DIMS = 4


def _pad_len(n: int, alignment: int) -> int:
    """Number of zero bytes needed to bring ``n`` up to a multiple of ``alignment``."""
    return (-n) % alignment


def _encode_string(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _check_int(vtype: GGUFValueType, value: Any) -> int:
    # bool is an int subclass; reject it so a flag is never written as a number by accident
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise GGUFError(f"{vtype.name} value must be an int, got {type(value).__name__}")
    lo, hi = _INT_RANGE[vtype]
    if not lo <= int(value) <= hi:
        raise GGUFError(f"{int(value)} out of range for {vtype.name}")
    return int(value)


def _encode_scalar(vtype: GGUFValueType, value: Any) -> bytes:
    if vtype is GGUFValueType.STRING:
        if not isinstance(value, str):
            raise GGUFError(f"STRING value must be str, got {type(value).__name__}")
        return _encode_string(value)
    if vtype is GGUFValueType.BOOL:
        if not isinstance(value, (bool, np.bool_)):
            raise GGUFError(f"BOOL value must be bool, got {type(value).__name__}")
        return struct.pack("<?", bool(value))
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise GGUFError(f"{vtype.name} value must be a number, got {type(value).__name__}")
        return struct.pack(_SCALAR_FMT[vtype], float(value))
    if vtype in _INT_RANGE:
        return struct.pack(_SCALAR_FMT[vtype], _check_int(vtype, value))
    raise GGUFError(f"not a scalar value type: {vtype!r}")


def _encode_array(elem_type: GGUFValueType, values: Iterable[Any]) -> bytes:
    if elem_type is GGUFValueType.ARRAY:
        # nested arrays are legal GGUF but nothing in llama.cpp reads them; keep the writer honest
        raise GGUFError("nested arrays are not supported")
    items = list(values)
    head = struct.pack("<IQ", int(elem_type), len(items))
    if elem_type is GGUFValueType.STRING:
        return head + b"".join(_encode_scalar(elem_type, v) for v in items)
    # validate each element (types, ranges), then pack them in one numpy call for speed
    for v in items:
        _encode_scalar(elem_type, v)
    arr = np.asarray([bool(v) if elem_type is GGUFValueType.BOOL else v for v in items])
    return head + arr.astype(_SCALAR_NP[elem_type]).tobytes()


@dataclass(frozen=True)
class _TensorEntry:
    name: str
    ne: tuple[int, ...]  # ggml order: reversed numpy shape
    gtype: GGMLType
    data: bytes


class GGUFWriter:
    """Collects metadata and tensors in memory, then writes one GGUF v3 file.

    Typical use::

        w = GGUFWriter()
        w.add_string("general.architecture", "llama")
        w.add_uint32("llama.block_count", 2)
        w.add_array("tokenizer.ggml.tokens", ["a", "b"], GGUFValueType.STRING)
        w.add_tensor("token_embd.weight", np.zeros((2, 64), np.float32))
        w.write("model.gguf")

    Keys are written in insertion order; ``general.alignment`` is always
    written (as UINT32) so readers never have to assume the default.
    """

    def __init__(self, alignment: int = GGUF_DEFAULT_ALIGNMENT) -> None:
        if alignment <= 0 or alignment & (alignment - 1):
            raise GGUFError(f"alignment must be a positive power of two, got {alignment}")
        self.alignment = alignment
        self._kv: dict[str, bytes] = {}  # key -> encoded (type + value)
        self._tensors: dict[str, _TensorEntry] = {}
        # written by the constructor only, so the key always matches the padding actually used
        self._kv[KEY_ALIGNMENT] = struct.pack("<I", int(GGUFValueType.UINT32)) + _encode_scalar(
            GGUFValueType.UINT32, alignment
        )

    # ---- metadata -------------------------------------------------------
    def _put(self, key: str, encoded: bytes) -> None:
        if not key:
            raise GGUFError("metadata key must be non-empty")
        if key == KEY_ALIGNMENT:
            raise GGUFError("set the alignment via GGUFWriter(alignment=...)")
        # llama.cpp rejects files with duplicate keys, so refuse rather than overwrite silently
        if key in self._kv:
            raise GGUFError(f"duplicate metadata key: {key}")
        self._kv[key] = encoded

    def add_value(self, key: str, value: Any, vtype: GGUFValueType) -> None:
        """Add a scalar of an explicit type (any type but ARRAY)."""
        self._put(key, struct.pack("<I", int(vtype)) + _encode_scalar(vtype, value))

    def add_uint32(self, key: str, value: int) -> None:
        self.add_value(key, value, GGUFValueType.UINT32)

    def add_int32(self, key: str, value: int) -> None:
        self.add_value(key, value, GGUFValueType.INT32)

    def add_uint64(self, key: str, value: int) -> None:
        self.add_value(key, value, GGUFValueType.UINT64)

    def add_float32(self, key: str, value: float) -> None:
        self.add_value(key, value, GGUFValueType.FLOAT32)

    def add_bool(self, key: str, value: bool) -> None:
        self.add_value(key, value, GGUFValueType.BOOL)

    def add_string(self, key: str, value: str) -> None:
        self.add_value(key, value, GGUFValueType.STRING)

    def add_array(self, key: str, values: Sequence[Any], elem_type: GGUFValueType) -> None:
        """Add an array whose elements all have ``elem_type`` (scalar or STRING)."""
        self._put(key, struct.pack("<I", int(GGUFValueType.ARRAY)) + _encode_array(elem_type, values))

    def add_string_array(self, key: str, values: Sequence[str]) -> None:
        self.add_array(key, values, GGUFValueType.STRING)

    def add_int32_array(self, key: str, values: Sequence[int]) -> None:
        self.add_array(key, values, GGUFValueType.INT32)

    def add_float32_array(self, key: str, values: Sequence[float]) -> None:
        self.add_array(key, values, GGUFValueType.FLOAT32)

    # ---- tensors --------------------------------------------------------
    def add_tensor(self, name: str, array: np.ndarray, gtype: GGMLType | None = None) -> None:
        """Add a tensor given in numpy (row-major) shape.

        ``gtype`` defaults to F16 for float16 input and F32 otherwise; data is
        converted to that type. The numpy shape ``(a, b)`` is stored as ggml
        ``ne = [b, a]`` (so a torch Linear weight ``(out, in)`` becomes the
        ``{in, out}`` tensor llama.cpp expects).
        """
        if not name:
            raise GGUFError("tensor name must be non-empty")
        if len(name.encode("utf-8")) >= 64:
            # GGML_MAX_NAME is 64 including the NUL terminator
            raise GGUFError(f"tensor name too long (max 63 bytes): {name}")
        if name in self._tensors:
            raise GGUFError(f"duplicate tensor: {name}")
        arr = np.asarray(array)
        if arr.ndim == 0 or arr.ndim > _GGML_MAX_DIMS:
            raise GGUFError(f"tensor {name}: need 1..{_GGML_MAX_DIMS} dims, got shape {arr.shape}")
        if arr.size == 0:
            raise GGUFError(f"tensor {name} is empty")
        if gtype is None:
            gtype = GGMLType.F16 if arr.dtype == np.float16 else GGMLType.F32
        gtype = GGMLType(gtype)
        data = np.ascontiguousarray(arr, dtype=_GGML_NP[gtype])
        if not np.all(np.isfinite(data)):
            # an overflowed F16 cast would silently poison the model
            raise GGUFError(f"tensor {name} has non-finite values after conversion to {gtype.name}")
        ne = tuple(int(d) for d in reversed(arr.shape))
        self._tensors[name] = _TensorEntry(name, ne, gtype, data.tobytes())

    # ---- output ---------------------------------------------------------
    def _header_bytes(self) -> bytes:
        parts = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self._tensors), len(self._kv))]
        for key, encoded in self._kv.items():
            parts.append(_encode_string(key))
            parts.append(encoded)
        offset = 0
        for t in self._tensors.values():
            parts.append(_encode_string(t.name))
            parts.append(struct.pack("<I", len(t.ne)))
            parts.append(struct.pack(f"<{len(t.ne)}Q", *t.ne))
            parts.append(struct.pack("<IQ", int(t.gtype), offset))
            # llama.cpp requires each offset to equal the padded running size exactly
            offset += len(t.data) + _pad_len(len(t.data), self.alignment)
        return b"".join(parts)

    def _write_to(self, fh: BinaryIO) -> int:
        header = self._header_bytes()
        fh.write(header)
        written = len(header)
        pad = _pad_len(written, self.alignment) if self._tensors else 0
        fh.write(b"\0" * pad)
        written += pad
        for t in self._tensors.values():
            fh.write(t.data)
            pad = _pad_len(len(t.data), self.alignment)
            # pad the last tensor too: ggml's own writer does, and loaders size the data section that way
            fh.write(b"\0" * pad)
            written += len(t.data) + pad
        return written

    def to_bytes(self) -> bytes:
        """The complete file contents (handy for tests and hashing)."""
        import io

        buf = io.BytesIO()
        self._write_to(buf)
        return buf.getvalue()

    def write(self, path: str | os.PathLike[str]) -> int:
        """Write the file atomically (temp file in the same dir + rename); returns its size."""
        with atomic_file(path) as fh:
            size = self._write_to(fh)
        return size


# ---------------------------------------------------------------------------
# reader (header + metadata only)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    tensor_count: int
    kv_count: int


@dataclass(frozen=True)
class GGUFArrayInfo:
    """Stand-in for an array longer than the reader's ``max_array_len``."""

    elem_type: GGUFValueType
    length: int


# sanity caps so a corrupt or hostile file cannot make us allocate gigabytes
_MAX_STRING_BYTES = 64 * 1024 * 1024
_MAX_COUNT = 2**40


class _Reader:
    def __init__(self, fh: BinaryIO, path: str) -> None:
        self.fh = fh
        self.path = path

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise GGUFError(f"{self.path}: truncated GGUF file")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > _MAX_STRING_BYTES:
            raise GGUFError(f"{self.path}: implausible string length {n}")
        # invalid UTF-8 occurs in some vocabularies; describing the file must not fail on it
        return self.read(n).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.unpack("<Q")
        if n > _MAX_STRING_BYTES:
            raise GGUFError(f"{self.path}: implausible string length {n}")
        self.fh.seek(n, os.SEEK_CUR)

    def value_type(self) -> GGUFValueType:
        code = self.unpack("<I")
        try:
            return GGUFValueType(code)
        except ValueError:
            raise GGUFError(f"{self.path}: unknown GGUF value type {code}") from None

    def scalar(self, vtype: GGUFValueType) -> Any:
        if vtype is GGUFValueType.STRING:
            return self.string()
        if vtype is GGUFValueType.ARRAY:
            raise GGUFError(f"{self.path}: nested arrays are not supported")
        return self.unpack(_SCALAR_FMT[vtype])

    def array(self, max_len: int | None) -> Any:
        elem_type = self.value_type()
        count = self.unpack("<Q")
        if count > _MAX_COUNT:
            raise GGUFError(f"{self.path}: implausible array length {count}")
        keep = max_len is None or count <= max_len
        if elem_type is GGUFValueType.STRING:
            if keep:
                return [self.string() for _ in range(count)]
            for _ in range(count):
                self.skip_string()
            return GGUFArrayInfo(elem_type, count)
        if elem_type is GGUFValueType.ARRAY:
            raise GGUFError(f"{self.path}: nested arrays are not supported")
        nbytes = count * struct.calcsize(_SCALAR_FMT[elem_type])
        if not keep:
            self.fh.seek(nbytes, os.SEEK_CUR)
            return GGUFArrayInfo(elem_type, count)
        arr = np.frombuffer(self.read(nbytes), dtype=_SCALAR_NP[elem_type])
        if elem_type is GGUFValueType.BOOL:
            return [bool(x) for x in arr]
        return arr.tolist()


def _read_header(r: _Reader) -> GGUFHeader:
    magic = r.read(4)
    if magic != GGUF_MAGIC:
        raise GGUFError(f"{r.path}: not a GGUF file (magic {magic!r})")
    version = r.unpack("<I")
    if version == 1:
        raise GGUFError(f"{r.path}: GGUF v1 is not supported")
    if version not in (2, 3):
        # a byte-swapped small number means a big-endian file
        raise GGUFError(f"{r.path}: unsupported GGUF version {version} (big-endian files are not supported)")
    n_tensors = r.unpack("<Q")
    n_kv = r.unpack("<Q")
    if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
        raise GGUFError(f"{r.path}: implausible tensor/kv counts")
    return GGUFHeader(version, n_tensors, n_kv)


def read_gguf_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read only the fixed header (magic, version, tensor and kv counts)."""
    with open(path, "rb") as fh:
        return _read_header(_Reader(fh, str(path)))


def read_gguf_metadata(
    path: str | os.PathLike[str], *, max_array_len: int | None = None, stop_after: str | None = None
) -> dict[str, Any]:
    """Read the metadata key/values of a GGUF file (no tensor infos or data).

    Scalars become Python ints/floats/bools/strs, arrays become lists.  With
    ``max_array_len`` set, longer arrays (e.g. a 150k-entry token list) are
    skipped and returned as ``GGUFArrayInfo(elem_type, length)`` so the catalog
    can describe a multi-GB model in milliseconds; ``stop_after`` ends the read at
    that key.  Raises ``GGUFError`` (a
    ``ValueError``) for files that are not valid GGUF v2/v3.
    """
    with open(path, "rb") as fh:
        r = _Reader(fh, str(path))
        header = _read_header(r)
        out: dict[str, Any] = {}
        for _ in range(header.kv_count):
            key = r.string()
            vtype = r.value_type()
            if vtype is GGUFValueType.ARRAY:
                out[key] = r.array(max_array_len)
            else:
                out[key] = r.scalar(vtype)
            if key == stop_after:
                break  # the caller needs nothing after this key (e.g. only the architecture)
        return out


def read_gguf_tensor_infos(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Tensor names and dimensions (innermost first, as ggml's ``ne``) of a GGUF file; no tensor data."""
    with open(path, "rb") as fh:
        r = _Reader(fh, str(path))
        header = _read_header(r)
        for _ in range(header.kv_count):
            r.skip_string()
            vtype = r.value_type()
            if vtype is GGUFValueType.ARRAY:
                r.array(0)
            elif vtype is GGUFValueType.STRING:
                r.skip_string()
            else:
                r.read(struct.calcsize(_SCALAR_FMT[vtype]))
        out: dict[str, tuple[int, ...]] = {}
        for _ in range(header.tensor_count):
            name = r.string()
            n_dims = r.unpack("<I")
            if n_dims > 8:
                raise GGUFError(f"{path}: tensor {name!r} has {n_dims} dimensions")
            out[name] = tuple(r.unpack("<Q") for _ in range(n_dims))
            r.read(12)  # ggml type (u32) and data offset (u64)
        return out
