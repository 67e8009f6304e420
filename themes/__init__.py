"""Built-in ddtui themes: `<name>.toml` (or `.json`) theme definitions, with an optional `<name>.tcss` beside them.

A package only so that installed copies of ddtui ship these files; a user's own themes go in `<home>/themes/`.
"""

from pathlib import Path

THEMES_DIR = Path(__file__).resolve().parent
