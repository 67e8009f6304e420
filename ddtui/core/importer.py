"""Importing images made elsewhere, with the parameters their tool wrote into them.

Each file is read (metadata of AUTOMATIC1111/Forge, stable-diffusion.cpp, ComfyUI, InvokeAI, SwarmUI, Fooocus
or ddtui), recognised by content hash if it was imported before, copied atomically into the output folder and
recorded as an `import` generation; then it is thumbnailed and queued for tagging. A corrupt or empty file
is reported and skipped; unknown metadata imports the image without parameters.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from PIL import Image
from pony.orm import db_session

from ..db.entities import utcnow
from .hashing import image_content_hash
from .metadata import ImageReadError, read_image_metadata
from .queue import JobQueue
from .recording import Recorder, RecordingError, write_atomic
from .thumbnails import make_thumbnail

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class ImportResult:
    path: str
    status: str  # imported, duplicate, skipped
    source: str = ""
    generation_id: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImportReport:
    results: list[ImportResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files as given, and image files inside folders (recursively, sorted)."""
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES:
                    yield child
        else:
            yield p


# Parameters an import keeps as columns when its tool recorded them.
_KEEP = ("prompt", "negative_prompt", "seed", "steps", "cfg", "sampler", "scheduler", "width", "height",
         "strength", "model", "model_hash", "loras", "clip_skip", "guidance")


class Importer:
    def __init__(self, recorder: Recorder, queue: JobQueue, thumbnails: Path, auto_tag: bool = True) -> None:
        self.recorder = recorder
        self.thumbnails = thumbnails
        self.queue = queue
        self.db = recorder.db
        self.auto_tag = auto_tag

    def import_file(self, path: Path) -> ImportResult:
        try:
            meta = read_image_metadata(path)
            content_hash = image_content_hash(path)
        except ImageReadError as exc:
            return ImportResult(str(path), "skipped", message=exc.reason)
        except OSError as exc:
            return ImportResult(str(path), "skipped", message=exc.strerror or str(exc))
        with db_session:
            existing = self.db.Generation.get(content_hash=content_hash)
            if existing is not None:
                return ImportResult(str(path), "duplicate", meta.source, existing.id,
                                    f"already in the history as #{existing.id}")
        params = {k: meta.params[k] for k in _KEEP if meta.params.get(k) not in (None, "", [])}
        params["imported_from"] = str(path.resolve())
        if meta.params.get("extra"):
            params["extra"] = meta.params["extra"]
        created = utcnow()
        gen_uuid = uuidlib.uuid4().hex
        target = self.recorder.output_dir / f"{created:%Y-%m-%d}" / f"import-{gen_uuid[:12]}{path.suffix.lower()}"
        try:
            write_atomic(target, path.read_bytes())
        except OSError as exc:
            return ImportResult(str(path), "skipped", meta.source, message=f"cannot copy: {exc.strerror or exc}")
        with Image.open(target) as im:
            width, height = im.size
        try:
            gid = self.recorder.insert_row(gen_uuid, target, "import", params, width, height, None, None, None, None,
                                        meta.source, content_hash, created)
        except Exception as exc:  # noqa: BLE001 - the copy must not outlive a failed insert
            target.unlink(missing_ok=True)
            raise RecordingError(f"cannot record {path}: {exc}") from exc
        try:
            make_thumbnail(target, self.thumbnails, gen_uuid)  # cheap here; browsing never decodes the full image
        except OSError:
            self.queue.submit("thumbnail", {}, priority=10, generation_id=gid)
        if self.auto_tag:
            self.queue.submit("tag", {}, priority=-10, generation_id=gid)
        return ImportResult(str(path), "imported", meta.source, gid)

    def import_paths(self, paths: Iterable[str | os.PathLike[str]]) -> ImportReport:
        report = ImportReport()
        for path in expand_paths(paths):
            if not path.exists():
                report.results.append(ImportResult(str(path), "skipped", message="no such file"))
                continue
            report.results.append(self.import_file(path))
        return report
