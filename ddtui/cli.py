"""The `ddtui` command: the terminal interface by default, and a subcommand for every capability.

Exit codes a script can rely on: 0 success, 1 the work failed (a job failed, nothing matched), 2 bad usage or
bad input (argparse, a config or catalog error), 3 the service or a worker could not be reached, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .config import Config, ConfigError, Home, load_config, resolve_home

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A user-facing error with an exit code; printed as `ddtui: <message>`."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def out_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _context(args: argparse.Namespace) -> tuple[Home, Config]:
    home = resolve_home(args.home)
    return home, load_config(home)


# ---------------------------------------------------------------- models

def cmd_models_list(args: argparse.Namespace) -> int:
    from .catalog.models import Catalog, human_size

    _, cfg = _context(args)
    cat = Catalog.scan(cfg.model_dir)
    if args.json:
        out_json({"model_dir": str(cfg.model_dir), "models": [e.to_dict() for e in cat.entries]})
        return EXIT_OK
    if not cat.entries:
        print(f"No models in {cfg.model_dir}.")
        print("Put model files in its stable-diffusion/, vae/, text-encoder/, lora/, esrgan/ and llm/ folders,")
        print(f"or write a small working demo set with:  ddtui models demo {cfg.model_dir}")
        return EXIT_OK
    print(f"Models in {cfg.model_dir}")
    width = max(len(e.rel_path) for e in cat.entries)
    for e in cat.entries:
        comps = ""
        if e.sidecar and e.sidecar.components:
            comps = "  [" + ", ".join(f"{k}={v}" for k, v in e.sidecar.components.items()) + "]"
        status = "ok" if e.usable else "PROBLEM"
        print(f"  {e.kind:<13} {e.rel_path:<{width}}  {human_size(e.size):>9}  {status}{comps}")
        for problem in e.problems:
            print(f"      ! {problem}")
    bad = sum(1 for e in cat.entries if not e.usable)
    if bad:
        print(f"{bad} model(s) have problems; the others are usable.")
    return EXIT_OK


def cmd_models_demo(args: argparse.Namespace) -> int:
    import time

    from .catalog.demo import demo_config_patch, write_demo_set

    _, cfg = _context(args)
    target = Path(args.dir).expanduser().resolve() if args.dir else cfg.model_dir
    t0 = time.perf_counter()
    demo = write_demo_set(target, seed=args.seed)
    elapsed = time.perf_counter() - t0
    configured = []
    if target == cfg.model_dir.resolve():
        # Point empty defaults at the demo set, so `ddtui generate "a cat"` works right away.
        for section, values in demo_config_patch().items():
            for key, value in values.items():
                if not cfg.data[section][key]:
                    cfg.data[section][key] = value
                    configured.append(f"{section}.{key}")
        if configured:
            cfg.save()
    if args.json:
        out_json({"model_dir": str(target), "files": [str(p) for p in demo.files], "seconds": elapsed,
                  "configured": configured})
    else:
        print(f"Wrote the demo model set to {target} in {elapsed:.1f} s:")
        for p in demo.files:
            print(f"  {p.relative_to(target)}  ({p.stat().st_size / 1e6:.2f} MB)")
        print("Random weights: images are noise-like, but every feature runs end to end.")
        if configured:
            print(f"Set {', '.join(configured)} in {cfg.path}.")
    return EXIT_OK


# ---------------------------------------------------------------- config

def cmd_config(args: argparse.Namespace) -> int:
    home, cfg = _context(args)
    if args.action == "path":
        print(cfg.path)
    elif args.action == "show":
        out_json(cfg.data) if args.json else print(json.dumps(cfg.data, indent=2))
    elif args.action == "check":
        print(f"{cfg.path}: ok")
    return EXIT_OK


# ---------------------------------------------------------------- parser

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ddtui",
        description="A terminal creative AI workstation: stable-diffusion.cpp images, history, LLM tagging.",
    )
    p.add_argument("--version", action="version", version=f"ddtui {__version__}")
    p.add_argument("--home", help="home folder (default: $DDTUI_HOME or ~/.local/share/ddtui)")
    p.add_argument("--images", choices=["auto", "kitty", "sixel", "halfcell", "none"],
                   help="how the TUI draws images (overrides ui.image_protocol)")
    p.set_defaults(handler=None)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    models = sub.add_parser("models", help="list model files or write the demo set")
    msub = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    ml = msub.add_parser("list", help="every model with its kind, components, size and problems")
    ml.add_argument("--json", action="store_true")
    ml.set_defaults(handler=cmd_models_list)
    md = msub.add_parser("demo", help="write a small working synthetic model set (random weights)")
    md.add_argument("dir", nargs="?", help="model folder to write into (default: the configured model_dir)")
    md.add_argument("--seed", type=int, default=0)
    md.add_argument("--json", action="store_true")
    md.set_defaults(handler=cmd_models_demo)

    config = sub.add_parser("config", help="show, check or locate config.json")
    config.add_argument("action", choices=["show", "check", "path"])
    config.add_argument("--json", action="store_true")
    config.set_defaults(handler=cmd_config)

    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.handler is None:
            from .tui.launch import run_tui

            return run_tui(args)
        return int(args.handler(args) or 0)
    except CLIError as exc:
        print(f"ddtui: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        print(f"ddtui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ddtui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
