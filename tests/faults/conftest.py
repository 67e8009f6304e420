"""Fault injection: shared invariants and the report printed at the end of `python -m pytest tests/faults`.

After every fault: each finished image is on disk and in the history, each job has a definite state, no file
is half-written, no row points at a missing file, `PRAGMA integrity_check` is ok, and the service works again.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image
from pony.orm import db_session

from ddtui.db.schema import open_database

REPORT: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def record(fault: str, **counts: int) -> None:
    for key, value in counts.items():
        REPORT[fault][key] += value


def check_invariants(home: Path, output_dir: Path | None = None, *, allow_active: bool = False) -> dict[str, int]:
    """Assert the durable state is whole; returns what was checked."""
    output_dir = output_dir or home / "outputs"
    db = open_database(home / "history.db")
    try:
        with db_session:
            conn = db.get_connection()
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = {g.uuid: g.path for g in db.Generation.select()}
            states = [j.state for j in db.Job.select()]
    finally:
        db.disconnect()
    files = [p for p in output_dir.rglob("*") if p.is_file()] if output_dir.exists() else []
    assert not [p for p in files if p.name.endswith(".tmp")], "a half-written file was left behind"
    for uuid, stored in rows.items():
        path = Path(stored) if Path(stored).is_absolute() else output_dir / stored
        assert path.exists(), f"row {uuid} points at a missing file {path}"
    recorded = {(Path(s) if Path(s).is_absolute() else output_dir / s).resolve() for s in rows.values()}
    for png in (p for p in files if p.suffix == ".png"):
        with Image.open(png) as im:
            im.load()  # whole, not truncated
        assert png.resolve() in recorded, f"{png} is on disk but not in the history"
    if not allow_active:
        assert set(states) <= {"done", "failed", "cancelled"}, f"jobs without a definite end: {states}"
    return {"images": len(rows), "jobs": len(states)}


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's hook signature
    if not REPORT:
        return
    terminalreporter.section("fault injection report")
    for fault, counts in REPORT.items():
        parts = ", ".join(f"{k} {v}" for k, v in counts.items())
        terminalreporter.write_line(f"{fault}: {parts}")


@pytest.fixture
def report():
    return record
