"""File hashing for ddtui: full-file SHA-256, A1111 "AutoV2" short model hashes, image content hashes.

All reads are streamed in fixed-size chunks so multi-gigabyte model files never sit in memory. Model hashes
are kept in the database (`ModelHashes`, table `model_file`): a file is hashed once for as long as its size and
modification time stay the same, across service restarts, and a first hash reports its progress.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pony.orm import db_session

__all__ = ["HashProgress", "ModelHashes", "file_sha256", "short_model_hash", "image_content_hash"]

# (bytes done, bytes in all) while a model file is being hashed
HashProgress = Callable[[int, int], None]
_PROGRESS_EVERY_S = 0.25

# 1 MiB reads keep syscall overhead low without holding big buffers.
_CHUNK_SIZE = 1 << 20

# AutoV2 (A1111, Civitai) is the first 10 hex digits of the whole-file SHA-256.
_AUTOV2_LENGTH = 10


def file_sha256(path: str | os.PathLike[str], progress: HashProgress | None = None) -> str:
    """Return the lowercase hex SHA-256 of the file at ``path``, read in chunks (progress every 0.25 s)."""
    digest = hashlib.sha256()
    total = os.path.getsize(path) if progress else 0
    done, last = 0, time.monotonic()
    with open(path, "rb") as handle:
        buf = bytearray(_CHUNK_SIZE * 8)
        view = memoryview(buf)
        while True:
            n = handle.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
            done += n
            if progress and time.monotonic() - last >= _PROGRESS_EVERY_S:
                last = time.monotonic()
                progress(done, total)
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


@dataclass
class ModelHash:
    path: str  # as the catalog names it (relative to the model folder)
    sha256: str
    family: str
    computed: bool  # hashed now (False: read from the database)
    seconds: float

    @property
    def short(self) -> str:
        return self.sha256[:_AUTOV2_LENGTH]


class ModelHashes:
    """Model file hashes stored in the database, keyed by path and valid while size and mtime match."""

    def __init__(self, db: Any, model_dir: Path) -> None:
        self.db = db
        self.model_dir = Path(model_dir)

    def cached(self, rel: str) -> ModelHash | None:
        """The stored hash when the file is unchanged since it was hashed; None otherwise."""
        st = (self.model_dir / rel).stat()
        with db_session:
            row = self.db.ModelFile.get(path=rel)
            if row is not None and row.size == st.st_size and row.mtime_ns == st.st_mtime_ns:
                return ModelHash(rel, row.sha256, row.family or "", False, row.seconds)
        return None

    def get(self, rel: str, progress: HashProgress | None = None) -> ModelHash:
        """The file's hash: from the database when unchanged, else computed now (reporting progress) and stored."""
        hit = self.cached(rel)
        if hit is not None:
            return hit
        from ..catalog.families import detect
        from ..db.entities import utcnow

        path = self.model_dir / rel
        before = path.stat()
        start = time.monotonic()
        if progress:
            progress(0, before.st_size)
        digest = file_sha256(path, progress)
        seconds = time.monotonic() - start
        after = path.stat()
        if progress:
            progress(after.st_size, after.st_size)
        family = detect(path).family
        if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
            # A file that changed while being read keeps no hash: the next use reads it again.
            with db_session:
                row = self.db.ModelFile.get(path=rel)
                values = dict(size=after.st_size, mtime_ns=after.st_mtime_ns, sha256=digest, family=family,
                              seconds=round(seconds, 3))
                if row is None:
                    self.db.ModelFile(path=rel, **values)
                else:
                    row.set(hashed=utcnow(), **values)
        return ModelHash(rel, digest, family, True, seconds)
