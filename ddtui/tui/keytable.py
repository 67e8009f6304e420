"""The key table of the README, made from the same bindings the help screen shows (default keys).

Run `python -m ddtui.tui.keytable` to print it; a test checks that the README lists every binding id.
"""

from __future__ import annotations

from types import SimpleNamespace


def key_rows() -> list[tuple[str, str, str, str]]:
    from .screens.help import HelpScreen

    # The help screen reads only the app's keymap; an empty one gives the default keys.
    return HelpScreen.key_rows(SimpleNamespace(app=SimpleNamespace(_keymap={})))  # type: ignore[arg-type]


def markdown() -> str:
    lines = ["| where | key | does | binding id (`ui.keys`) |", "|---|---|---|---|"]
    for where, key, does, binding_id in key_rows():
        if where == "---":
            continue
        cell = key.replace("|", "\\|")
        lines.append(f"| {where} | `{cell}` | {does} | {binding_id} |" if key else f"| {where} |  | {does} | |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown())
