"""Rules every client relies on, written once: where a stored image path points, which items can be re-run.

The store (for what clients read), the core (for what it does) and the CLI all ask these functions, so a
history item never looks re-runnable on one screen and not on another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Kinds made by a generation request, which a re-run can make again with the same seed.
RERUN_KINDS = ("txt2img", "img2img", "inpaint", "variation", "edit")


def stored_file(stored: str, output_dir: Path) -> Path:
    """The file a stored generation path names: relative paths live under the output folder."""
    path = Path(stored)
    return path if path.is_absolute() else Path(output_dir) / path


def rerun_refusal(kind: str, params: dict[str, Any]) -> str:
    """Why an item cannot be re-run exactly ("" when it can)."""
    if kind == "upscale":
        return "an upscale is re-run from its source image: select its parent and upscale that"
    if kind == "import":
        return "an imported image was not made here; reuse its parameters instead of re-running it"
    if kind not in RERUN_KINDS:
        return f"a {kind} item cannot be re-run"
    if not params.get("model"):
        return "its parameters name no model"
    return ""
