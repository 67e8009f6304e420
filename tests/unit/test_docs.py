"""The README stays true: it lists every binding id and every CLI subcommand."""

from pathlib import Path

from ddtui.cli import build_parser
from ddtui.tui.keytable import key_rows

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_lists_every_binding_id():
    keys_section = README.split("\n## Keys", 1)[1]
    missing = [b for _, _, _, ids in key_rows() for b in ids.split(", ") if b and not b.startswith("(")
               and f"| {ids} |" not in keys_section]
    assert not missing, f"README key table is stale; run python -m ddtui.tui.keytable ({missing[:5]})"


def test_readme_names_every_subcommand():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        assert f"`ddtui {name}" in README, f"README does not describe `ddtui {name}`"
