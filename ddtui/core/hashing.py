"""File hashing for ddtui: full-file SHA-256, A1111 "AutoV2" short model hashes, image content hashes.

All reads are streamed in fixed-size chunks so multi-gigabyte model files never sit in memory.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

__all__ = ["file_sha256", "short_model_hash", "image_content_hash"]

# 1 MiB reads keep syscall overhead low without holding big buffers.
_CHUNK_SIZE = 1 << 20

# AutoV2 (A1111, Civitai) is the first 10 hex digits of the whole-file SHA-256.
_AUTOV2_LENGTH = 10


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the lowercase hex SHA-256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _cached_sha256(resolved: str, size: int, mtime_ns: int) -> str:
    # size and mtime_ns are part of the key so an edited file is hashed again.
    return file_sha256(resolved)


def short_model_hash(path: str | os.PathLike[str]) -> str:
    """Return the A1111 "AutoV2" model hash: the first 10 hex chars of the file's SHA-256.

    Results are memoised per (path, size, mtime) because model files are large and rarely change.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _cached_sha256(str(resolved), stat.st_size, stat.st_mtime_ns)[:_AUTOV2_LENGTH]


def image_content_hash(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 of the image file's bytes (identifies identical files, not identical pixels)."""
    return file_sha256(path)
