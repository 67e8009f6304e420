"""Recording finished images: an atomic PNG with its parameters, then one database transaction.

Order of work, chosen so that no crash leaves a row without a file or a half-written PNG:
1. the PNG (with an AUTOMATIC1111 `parameters` chunk and a `ddtui` chunk holding every parameter and the
   lineage) is written to a temporary name, flushed, fsynced and renamed into `outputs/YYYY-MM-DD/`;
2. the generation row is inserted in one transaction.
A crash between 1 and 2 leaves a complete file without a row; `adopt_orphans` records such files at the
next start from their `ddtui` chunk, and removes temporary files a crash left behind.
"""

from __future__ import annotations

import json
import logging
import struct
import uuid as uuidlib
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pony.orm import Database, db_session

from ..atomic import atomic_file
from ..db.entities import GENERATION_KINDS, utcnow
from .metadata import (
    DDTUI_KEY,
    PARAMETERS_KEY,
    ImageReadError,
    format_a1111_parameters,
    read_image_metadata,
)

log = logging.getLogger("ddtui.recording")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RecordingError(Exception):
    """An image could not be written or recorded (disk full, bad PNG); nothing partial is left behind."""


@dataclass
class RecordedImage:
    id: int
    uuid: str
    path: Path
    width: int
    height: int


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def text_chunk(key: str, text: str, compress: bool = False) -> bytes:
    """A PNG text chunk: tEXt when Latin-1 will do (what other tools read most), else UTF-8 iTXt."""
    if not compress:
        try:
            return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))
        except UnicodeEncodeError:
            pass
    body = text.encode("utf-8")
    flag = b"\1\0" + zlib.compress(body) if compress else b"\0\0" + body
    return _chunk(b"iTXt", key.encode("latin-1") + b"\0" + flag[:2] + b"\0\0" + flag[2:])


def png_size(png: bytes) -> tuple[int, int]:
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise RecordingError("the worker sent something that is not a PNG")
    return struct.unpack(">II", png[16:24])


def add_text_chunks(png: bytes, chunks: dict[str, tuple[str, bool]]) -> bytes:
    """Insert text chunks right after IHDR without decoding the image (fast, lossless)."""
    png_size(png)
    ihdr_end = 8 + 4 + 4 + 13 + 4
    extra = b"".join(text_chunk(k, v, compress) for k, (v, compress) in chunks.items())
    return png[:ihdr_end] + extra + png[ihdr_end:]


def write_atomic(path: Path, data: bytes) -> None:
    """The image is whole or absent, and its name survives a power loss (the folder is fsynced too)."""
    with atomic_file(path, sync_dir=True) as fh:
        fh.write(data)


# Parameters that are columns of a generation row (the rest stay in `params` only).
_COLUMNS = ("prompt", "negative_prompt", "seed", "width", "height", "steps", "cfg", "sampler", "scheduler",
            "strength", "model", "components", "model_hash", "loras")


class Recorder:
    """Writes images into the output folder and records them in the history."""

    def __init__(self, db: Database, output_dir: Path) -> None:
        self.db = db
        self.output_dir = Path(output_dir)

    def stored_path(self, path: Path) -> str:
        """Relative to the output folder when inside it, so a moved home keeps working."""
        try:
            return path.resolve().relative_to(self.output_dir.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    def file_path(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.output_dir / p

    def record(self, png: bytes, params: dict[str, Any], kind: str = "txt2img", parent_id: int | None = None,
               preset_id: int | None = None, duration_s: float | None = None, vram_peak_mb: float | None = None,
               source: str = "ddtui", content_hash: str = "", created: datetime | None = None,
               job_id: int | None = None) -> RecordedImage:
        """Write `png` with its metadata and record it; raises RecordingError leaving nothing partial.

        With `job_id`, the same transaction adds the image to that job's finished images, so a crash can never
        leave an image recorded that its (resumed) job does not know about and makes again."""
        if kind not in GENERATION_KINDS:
            raise RecordingError(f"unknown generation kind {kind!r}")
        width, height = png_size(png)
        gen_uuid = uuidlib.uuid4().hex
        created = created or utcnow()
        local = created + _utc_offset()
        seed = int(params.get("seed") or 0)
        path = self.output_dir / f"{local:%Y-%m-%d}" / f"{local:%H%M%S}-{seed}-{gen_uuid[:12]}.png"
        parent_uuid = self._uuid_of(parent_id) if parent_id else None
        document = {
            "uuid": gen_uuid, "kind": kind, "params": params, "created": created.isoformat(),
            "lineage": {"parent": parent_uuid}, "duration_s": duration_s, "source": source,
        }
        a1111 = dict(params, kind=kind, width=params.get("width") or width, height=params.get("height") or height,
                     model=Path(str(params.get("model") or "")).stem)  # A1111 names the model by its stem
        data = add_text_chunks(png, {
            PARAMETERS_KEY: (format_a1111_parameters(a1111), False),
            DDTUI_KEY: (json.dumps(document, ensure_ascii=False, sort_keys=True, default=str), True),
        })
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise RecordingError(f"cannot write {path}: {exc.strerror or exc}") from exc
        try:
            gid = self.insert_row(gen_uuid, path, kind, params, width, height, parent_id, preset_id, duration_s,
                                  vram_peak_mb, source, content_hash, created, job_id)
        except Exception:
            # The row did not land: leave the complete file for adopt_orphans rather than lose the image.
            log.exception("recording %s failed after the file was written; it will be adopted at next start", path)
            raise
        return RecordedImage(gid, gen_uuid, path, width, height)

    def _uuid_of(self, gid: int) -> str | None:
        with db_session:
            g = self.db.Generation.get(id=gid)
            return g.uuid if g else None

    def insert_row(self, gen_uuid: str, path: Path, kind: str, params: dict[str, Any], width: int, height: int,
                parent_id: int | None, preset_id: int | None, duration_s: float | None,
                vram_peak_mb: float | None, source: str, content_hash: str, created: datetime,
                job_id: int | None = None) -> int:
        fields: dict[str, Any] = {k: params[k] for k in _COLUMNS if params.get(k) is not None}
        # The file's real size (a hires fix or an upscale differs from the request); `params` keeps the request.
        fields["width"], fields["height"] = int(width), int(height)
        for key, cast in (("seed", int), ("steps", int), ("cfg", float)):
            if key in fields:
                fields[key] = cast(fields[key])
        if "strength" in fields:
            fields["strength"] = float(fields["strength"])
        fields["components"] = dict(fields.get("components") or {})
        fields["loras"] = list(fields.get("loras") or [])
        for key in ("prompt", "negative_prompt", "sampler", "scheduler", "model", "model_hash"):
            fields[key] = str(fields.get(key) or "")
        with db_session:
            gen = self.db.Generation(
                uuid=gen_uuid, path=self.stored_path(path), kind=kind, params=params, created=created,
                parent=self.db.Generation.get(id=parent_id) if parent_id else None,
                preset=self.db.ImagePreset.get(id=preset_id) if preset_id else None,
                duration_s=duration_s, vram_peak_mb=vram_peak_mb, source=source, content_hash=content_hash,
                **fields,
            )
            gen.flush()
            job = self.db.Job.get(id=job_id) if job_id else None
            if job is not None:
                result = dict(job.result)
                result["generation_ids"] = [*result.get("generation_ids", []), gen.id]
                job.result = result
            return int(gen.id)

    def adopt_orphans(self, days: int = 7) -> list[RecordedImage]:
        """Record complete images a crash left without a row; delete half-written temporary files."""
        adopted: list[RecordedImage] = []
        if not self.output_dir.is_dir():
            return adopted
        cutoff = datetime.now() - timedelta(days=days)
        folders = [d for d in self.output_dir.iterdir()
                   if d.is_dir() and datetime.fromtimestamp(d.stat().st_mtime) >= cutoff]
        with db_session:
            known = {row for row in self.db.select("SELECT uuid FROM generation WHERE created >= $since",
                                                   {"since": (utcnow() - timedelta(days=days + 1)).isoformat(" ")})}
        for folder in sorted(folders):
            for tmp in folder.glob(".*.tmp"):
                log.warning("removing half-written file %s", tmp)
                tmp.unlink(missing_ok=True)
            for png in sorted(folder.glob("*.png")):
                short = png.stem.rsplit("-", 1)[-1]
                if any(u.startswith(short) for u in known):
                    continue
                rec = self._adopt(png, known)
                if rec is not None:
                    adopted.append(rec)
                    known.add(rec.uuid)
        return adopted

    def _adopt(self, png: Path, known: set[str]) -> RecordedImage | None:
        try:
            meta = read_image_metadata(png)
        except ImageReadError as exc:
            log.warning("not adopting %s: %s", png, exc)
            return None
        doc = meta.document or {}
        gen_uuid = doc.get("uuid")
        if meta.source != "ddtui" or not isinstance(gen_uuid, str) or gen_uuid in known:
            return None
        with db_session:
            if self.db.Generation.get(uuid=gen_uuid):
                return None
        params = doc.get("params") or {}
        kind = str(doc["kind"]) if doc.get("kind") in GENERATION_KINDS else "txt2img"
        parent_uuid = (doc.get("lineage") or {}).get("parent")
        with db_session:
            parent = self.db.Generation.get(uuid=parent_uuid) if parent_uuid else None
            parent_id = parent.id if parent else None
        created = _parse_time(doc.get("created")) or utcnow()
        with open(png, "rb") as fh:
            width, height = png_size(fh.read(24))
        gid = self.insert_row(gen_uuid, png, kind, params, width, height, parent_id, None, doc.get("duration_s"),
                              None, str(doc.get("source") or "ddtui"), "", created)
        log.info("adopted %s (recorded after a crash)", png)
        return RecordedImage(gid, gen_uuid, png, width, height)


def _utc_offset() -> timedelta:
    """Local time offset, so output folders follow the user's calendar day."""
    now = datetime.now()
    return now - datetime.utcnow().replace(microsecond=now.microsecond)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
