"""Writing a file whole or not at all: a temporary file beside it, flushed, fsynced, then renamed into place.

Every file ddtui writes that a crash must not leave half-written goes through `atomic_file`: config.json, the
service's key and pid files, recorded and imported images, and the synthetic model files. Temporary names look
like `.<name>.<random>.tmp`, which is what the recorder removes after a crash.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def current_umask() -> int:
    # Read it without the racy os.umask() set/restore dance where /proc allows.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: int | None = None, sync_dir: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on success it replaces `path` in one step, on failure it vanishes.

    `mode` defaults to what a plain open() would give; `sync_dir` also fsyncs the folder, so the new name
    itself survives a power loss (the images in the history need that; a config file does not)."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        os.fchmod(fd, mode if mode is not None else 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync_dir:
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
