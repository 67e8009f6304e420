"""ddtui's own `ddtui` chunk: the full parameter document it records with every image."""

from __future__ import annotations

from typing import Any

from .common import _empty_params


def _parse_ddtui(doc: dict[str, Any]) -> dict[str, Any]:
    stored = doc["params"] if isinstance(doc.get("params"), dict) else doc
    params = _empty_params()
    params.update(stored)
    return params
