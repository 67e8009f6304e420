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
IMPORT_TIMEOUT_S = 3600.0  # an import of many files answers when the last one is recorded


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
        about = ""
        if e.kind == "image":
            label = e.info.label if e.info and e.info.family != "unknown" else e.family
            form = {"flat": "DiffusionDesk sidecar", "nested": "ddtui sidecar"}.get(
                e.sidecar.form if e.sidecar else "", "no sidecar")
            about = f"  {label}, {form}"
        print(f"  {e.kind:<13} {e.rel_path:<{width}}  {human_size(e.size):>9}  {status}{about}{comps}")
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


# ---------------------------------------------------------------- service

def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from .core.client import CoreClient, ServiceUnavailable, ensure_service, ping, service_pid

    home, cfg = _context(args)
    if args.stop:
        if not asyncio.run(ping(home)):
            print("No ddtui service is running for this home.")
            return EXIT_OK

        async def stop() -> None:
            async with CoreClient(home) as client:
                await client.request("stop_service")

        asyncio.run(stop())
        for _ in range(150):
            if service_pid(home) is None:
                break
            import time

            time.sleep(0.1)
        print("The ddtui service stopped; queued jobs stay queued.")
        return EXIT_OK
    if args.status:
        return _print_status(home, args.json)
    if asyncio.run(ping(home)):
        print(f"A ddtui service already runs for {home.root} (pid {service_pid(home)}).")
        return EXIT_OK
    if args.detach:
        try:
            asyncio.run(ensure_service(home))
        except ServiceUnavailable as exc:
            raise CLIError(str(exc), EXIT_UNAVAILABLE) from None
        print(f"The ddtui service runs in the background (pid {service_pid(home)}); stop it with `ddtui serve --stop`.")
        return EXIT_OK
    from .core.server import serve

    return serve(home, cfg)


def _print_status(home: Home, as_json: bool) -> int:
    import asyncio

    from .core.client import CoreClient, ServiceUnavailable, ping

    async def status() -> dict[str, Any]:
        async with CoreClient(home) as client:
            return await client.request("core_status")

    if not asyncio.run(ping(home)):
        if as_json:
            out_json({"service_running": False})
        else:
            print("No ddtui service is running for this home.")
        return EXIT_UNAVAILABLE
    try:
        st = asyncio.run(status())
    except ServiceUnavailable as exc:
        raise CLIError(str(exc), EXIT_UNAVAILABLE) from None
    if as_json:
        out_json({"service_running": True, **st})
        return EXIT_OK
    print(f"ddtui service pid {st['pid']}: {'paused' if st['paused'] else 'running'}, "
          f"{st['queued']} queued, {len(st['running'])} running")
    for w in st["workers"]:
        print(f"  {w['name']:<12} {w['kind']:<4} {w['state']:<10} {w['backend'] or '-':<5} {w['device'] or '-'}"
              f"  model={w['loaded_model'] or '-'}  restarts={w['restarts']}"
              + (f"  ({w['last_error']})" if w["last_error"] else ""))
    return EXIT_OK


def _with_service(args: argparse.Namespace, body: Callable[..., Any]) -> Any:
    """Run `body(client)` against the home's service, starting the service when none runs."""
    import asyncio

    from .core.client import CoreClient, RequestFailed, ServiceUnavailable, ensure_service

    home, _ = _context(args)

    async def run() -> Any:
        await ensure_service(home)
        async with CoreClient(home) as client:
            return await body(client)

    try:
        return asyncio.run(run())
    except RequestFailed as exc:
        code = (EXIT_FAILED if exc.reason == "NotFound" else EXIT_UNAVAILABLE if exc.reason == "DatabaseBusy" else
                EXIT_USAGE if exc.reason in ("ParamError", "QueueError", "ValueError", "KeyError", "EditError",
                                             "ConfigError") else EXIT_FAILED)
        raise CLIError(str(exc), code) from None
    except ServiceUnavailable as exc:
        raise CLIError(str(exc), EXIT_UNAVAILABLE) from None


# ---------------------------------------------------------------- generate / upscale

def _progress_line(event: dict[str, Any]) -> str:
    d = event.get("data", {})
    fraction = float(d.get("fraction", 0.0))
    bar = "#" * int(fraction * 24)
    step = f"{d.get('step', 0)}/{d.get('steps', '?')}"
    image = f"image {int(d.get('image', 0)) + 1}/{d.get('batch', 1)}"
    elapsed = float(d.get("elapsed", 0.0))
    left = ""
    if 0.02 < fraction < 1:
        left = f" ~{elapsed / fraction * (1 - fraction):.0f}s left"
    return f"\r[{bar:<24}] {step:>7} {d.get('phase', ''):<9} {image}{left}   "


async def _follow(client: Any, job_id: int, as_json: bool, quiet: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """Print a job's events until it ends; returns its final state and the images it made."""
    images: list[dict[str, Any]] = []
    tty = sys.stderr.isatty() and not as_json and not quiet
    async for event, _buffers in client.iter_events():
        if event.get("job_id") != str(job_id):
            continue
        kind, data = event["event"], event.get("data", {})
        if kind == "progress" and tty:
            sys.stderr.write(_progress_line(event))
            sys.stderr.flush()
        elif kind == "model_hash" and not as_json and not quiet:
            _show_model_hash(data, tty)
        elif kind == "image":
            images.append(data)
            if as_json:
                out_json({"event": "image", "job_id": job_id, **data})
            elif not quiet:
                if tty:
                    sys.stderr.write("\r" + " " * 78 + "\r")
                print(f"#{data['generation_id']}  {data['path']}  seed {data.get('seed', '')}")
        elif kind == "token" and not as_json and not quiet:
            sys.stdout.write(data.get("text", ""))
            sys.stdout.flush()
        elif kind in ("done", "failed", "cancelled"):
            if tty:
                sys.stderr.write("\r" + " " * 78 + "\r")
            if as_json:
                out_json({"event": kind, "job_id": job_id, **data})
            elif kind == "failed":
                print(f"ddtui: job {job_id} failed: {data.get('reason')}: {data.get('message')}", file=sys.stderr)
            elif kind == "cancelled" and not quiet:
                print(f"job {job_id} cancelled", file=sys.stderr)
            return kind, images
        elif kind == "retrying" and not quiet and not as_json:
            print(f"\nattempt {data.get('attempts')} failed ({data.get('reason')}: {data.get('message')}); retrying",
                  file=sys.stderr)
    return "unknown", images


def _show_model_hash(data: dict[str, Any], tty: bool) -> None:
    """A model file's first hash: a live line on a terminal, a start and an end line otherwise."""
    from .catalog.models import human_size

    name, total = data.get("model", ""), int(data.get("total") or 0)
    if tty:
        end = "\n" if data.get("state") == "done" else ""
        sys.stderr.write(f"\rhashing model {name} ({human_size(total)}): {100 * data.get('fraction', 0):3.0f}%{end}")
        sys.stderr.flush()
    elif data.get("state") == "done":
        print(f"hashed model {name} in {data.get('seconds', 0):.1f} s (kept until the file changes)", file=sys.stderr)
    elif not data.get("done"):
        print(f"hashing model {name} ({human_size(total)}), once per file ...", file=sys.stderr)


def _generate_request(args: argparse.Namespace) -> dict[str, Any]:
    from .core.params import ParamError, parse_size

    req: dict[str, Any] = {"prompt": args.prompt, "batch": args.n}
    for key, value in (("model", args.model), ("preset", args.preset), ("steps", args.steps), ("cfg", args.cfg),
                       ("guidance", args.guidance), ("seed", args.seed), ("sampler", args.sampler),
                       ("scheduler", args.scheduler), ("negative_prompt", args.negative),
                       ("strength", args.strength), ("clip_skip", args.clip_skip),
                       ("mask_blur", args.mask_blur)):
        if value is not None:
            req[key] = value
    if args.size:
        try:
            req["width"], req["height"] = parse_size(args.size)
        except ParamError as exc:
            raise CLIError(str(exc)) from None
    if args.init:
        req["init_image"] = str(Path(args.init).expanduser().resolve())
    if args.mask:
        req["mask_image"] = str(Path(args.mask).expanduser().resolve())
    if args.vae_tiling:
        req["vae_tiling"] = True
    if args.hires:
        req["hires"] = {"enabled": True, "scale": args.hires_scale, "steps": args.hires_steps,
                        "strength": args.hires_strength, "upscaler": args.hires_upscaler or ""}
    if args.style:
        req["styles"] = list(args.style)  # applied by the core, which records which were used
    return req


def cmd_generate(args: argparse.Namespace) -> int:
    request = _generate_request(args)

    async def body(client: Any) -> int:
        await client.subscribe()
        job = await client.submit("generate", request, priority=args.priority)
        if args.no_wait:
            out_json({"job_id": job["id"], "state": job["state"]}) if args.json else print(f"queued job {job['id']}")
            return EXIT_OK
        if not args.json:
            print(f"job {job['id']}: {request['batch']} image(s), seed {job['payload']['seed']}", file=sys.stderr)
        state, _ = await _follow(client, job["id"], args.json)
        return EXIT_OK if state == "done" else EXIT_FAILED

    return _with_service(args, body)


def cmd_upscale(args: argparse.Namespace) -> int:
    gid = _generation_ref(args, args.image)

    async def body(client: Any) -> int:
        await client.subscribe()
        job = await client.submit("upscale", {"generation_id": gid, "upscaler": args.model or ""})
        state, _ = await _follow(client, job["id"], args.json)
        return EXIT_OK if state == "done" else EXIT_FAILED

    return _with_service(args, body)


def _generation_ref(args: argparse.Namespace, ref: str) -> int:
    """A history id, or a file path (imported through the service first when it is not in the history yet)."""
    if ref.isdigit():
        return int(ref)
    path = Path(ref).expanduser()
    if not path.exists():
        raise CLIError(f"{ref} is neither a history id nor an existing file")

    async def body(client: Any) -> dict[str, Any]:
        return await client.request("history.import", {"paths": [str(path.resolve())], "tag": False},
                                    timeout=IMPORT_TIMEOUT_S)

    result = _with_service(args, body)["results"][0]
    if result.get("generation_id") is None:
        raise CLIError(f"cannot use {ref}: {result.get('message')}")
    return int(result["generation_id"])


def cmd_explore(args: argparse.Namespace) -> int:
    from .core.explore import LOCKABLE

    unlocked = {u.strip() for u in args.unlock.split(",") if u.strip()}
    bad = unlocked - set(LOCKABLE)
    if bad:
        raise CLIError(f"cannot unlock {', '.join(sorted(bad))} (choose from {', '.join(LOCKABLE)})")
    locked = [p for p in LOCKABLE if p not in unlocked]

    async def body(client: Any) -> int:
        await client.subscribe()
        res = await client.request("submit", {"kind": "explore", "params": {"generation_id": args.id,
                                                                             "locked": locked}})
        group = res["group"]
        cells: dict[str, dict[str, Any]] = {}
        finished: dict[str, str] = {}
        async for event, _ in client.iter_events():
            kind, data = event["event"], event.get("data", {})
            if kind == "exploration_failed" and data.get("group") == group:
                raise CLIError(data.get("message", "exploration failed"), EXIT_FAILED)
            if kind == "exploration" and data.get("group") == group:
                cells = {str(c["job_id"]): c for c in data["cells"]}
                if args.json:
                    out_json({"event": "exploration", **data})
                continue
            cell = cells.get(event.get("job_id", ""))
            if cell is None:
                continue
            if kind == "image":
                if args.json:
                    out_json({"event": "image", "position": cell["position"], **data})
                else:
                    r, c = cell["position"]
                    print(f"[{r},{c}] #{data['generation_id']}  seed {cell['seed']}  steps {cell['steps']}  "
                          f"cfg {cell['cfg']}  {cell['sampler']}/{cell['scheduler']}  {_clip(cell['prompt'], 40)}")
            elif kind in ("done", "failed", "cancelled"):
                finished[event["job_id"]] = kind
                if len(finished) == len(cells):
                    break
        return EXIT_OK if all(v == "done" for v in finished.values()) else EXIT_FAILED

    return _with_service(args, body)


def cmd_prompt(args: argparse.Namespace) -> int:
    from .core import prompt_tools as pt

    _, cfg = _context(args)
    system = cfg["llm"]["system_prompts"]
    text = " ".join(args.text)
    if args.action == "enhance":
        messages, params = pt.enhance_messages(system["enhance"], text), {"max_tokens": 300, "temperature": 0.7}
    elif args.action == "variations":
        messages = pt.variations_messages(system["variations"], text, args.n)
        params = {"json_schema": pt.variations_schema(args.n, text), "max_tokens": 800, "stream": False}
    else:
        messages = pt.styles_messages(system["styles"], text)
        params = {"json_schema": pt.STYLES_SCHEMA, "max_tokens": 900, "stream": False}

    async def body(client: Any) -> int:
        await client.subscribe()
        job = await client.submit("chat", {"messages": messages, "params": params}, priority=5)
        answer = ""
        async for event, _ in client.iter_events():
            if event.get("job_id") != str(job["id"]):
                continue
            if event["event"] == "done":
                answer = event["data"].get("text", "")
                break
            if event["event"] in ("failed", "cancelled"):
                raise CLIError(f"the LLM job {event['event']}: {event['data'].get('message', '')}", EXIT_FAILED)
        try:
            if args.action == "enhance":
                result: Any = pt.read_enhanced(answer, text)
            elif args.action == "variations":
                result = pt.read_variations(answer, text, args.n)
            else:
                result = pt.read_styles(answer)
        except pt.PromptToolError as exc:
            raise CLIError(str(exc), EXIT_FAILED) from None
        if args.action == "styles" and args.save:
            for style in result:
                await client.request("style.save", {"by_name": True, **style})
        if args.json:
            out_json({"action": args.action, "result": result})
        elif isinstance(result, str):
            print(result)
        else:
            for item in result:
                print(item if isinstance(item, str) else
                      f"{item['name']}: {item['prompt']}" + (f"  (negative: {item['negative_prompt']})"
                                                             if item["negative_prompt"] else ""))
        return EXIT_OK

    return _with_service(args, body)


# ---------------------------------------------------------------- history

def _store(args: argparse.Namespace):  # noqa: ANN202 - (home, cfg, Store)
    from .db.store import Store

    home, cfg = _context(args)
    return home, cfg, Store(home.db_file, cfg.output_dir)


def _parse_day(text: str | None, what: str):  # noqa: ANN202
    from datetime import datetime

    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(f"{what} must be a date like 2026-11-25 or 2026-11-25T14:00, got {text!r}") from None


def cmd_history(args: argparse.Namespace) -> int:
    if args.action in ("search", "show"):
        return _history_read(args)
    if args.action == "rerun":
        async def rerun(client: Any) -> int:
            await client.subscribe()
            job = await client.submit("rerun", {"generation_id": args.id})
            state, _ = await _follow(client, job["id"], args.json)
            return EXIT_OK if state == "done" else EXIT_FAILED

        return _with_service(args, rerun)
    if args.action == "rate":
        if not 0 <= args.rating <= 5:
            raise CLIError(f"rating must be from 0 to 5, got {args.rating}")
        _with_service(args, lambda c: c.request("history.rate", {"ids": [args.id], "rating": args.rating}))
        print(f"#{args.id} rated {args.rating}") if not args.json else out_json({"id": args.id, "rating": args.rating})
        return EXIT_OK
    if args.action == "favorite":
        _with_service(args, lambda c: c.request("history.favorite", {"ids": [args.id], "favorite": not args.off}))
        print(f"#{args.id} {'un' if args.off else ''}marked as favorite")
        return EXIT_OK
    if args.action == "tag":
        add = [t[1:] if t.startswith("+") else t for t in args.tags if not t.startswith("-")]
        remove = [t[1:] for t in args.tags if t.startswith("-")]
        res = _with_service(args, lambda c: c.request("history.tags", {"id": args.id, "add": add, "remove": remove}))
        tags = sorted(t["name"] for t in res["tags"])
        out_json({"id": args.id, "tags": tags}) if args.json else print(f"#{args.id}: {', '.join(tags) or '(no tags)'}")
        return EXIT_OK
    if args.action == "delete":
        return _history_delete(args)
    return EXIT_USAGE


def _history_read(args: argparse.Namespace) -> int:
    from .db.queries import QueryError
    from .db.records import HistoryQuery

    _, _, store = _store(args)
    try:
        if args.action == "show":
            return _history_show(store, args)
        q = HistoryQuery(text=" ".join(args.text), tags=args.tag or [], model=args.model or "",
                         min_rating=args.min_rating, favorite=args.favorite, kind=args.kind or "",
                         date_from=_parse_day(args.since, "--since"), date_to=_parse_day(args.until, "--until"))
        try:
            page = store.history_page(q, limit=args.limit)
        except QueryError as exc:
            raise CLIError(str(exc)) from None
        if args.json:
            for item in page.items:
                out_json({**item.to_dict(), "file": str(store.file_of(item.path))})
        else:
            for item in page.items:
                stars = "*" * item.rating
                fav = "♥" if item.favorite else " "
                print(f"#{item.id:<6} {item.created:%Y-%m-%d %H:%M} {fav} {stars:<5} {item.kind:<8} "
                      f"{item.width}x{item.height}  {_clip(item.prompt, 70)}")
            if not page.items:
                print("Nothing matches.")
        return EXIT_OK if page.items else EXIT_FAILED
    finally:
        store.close()


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _history_show(store: Any, args: argparse.Namespace) -> int:
    gen = store.generation(args.id)
    if gen is None:
        raise CLIError(f"no history item #{args.id}", EXIT_FAILED)
    info = {
        "id": gen.id, "uuid": gen.uuid, "file": str(gen.file), "exists": gen.file.exists(), "kind": gen.kind,
        "source": gen.source, "prompt": gen.prompt, "negative_prompt": gen.negative_prompt, "seed": gen.seed,
        "size": f"{gen.width}x{gen.height}", "steps": gen.steps, "cfg": gen.cfg, "sampler": gen.sampler,
        "scheduler": gen.scheduler, "strength": gen.params.get("strength"), "model": gen.model,
        "model_hash": gen.model_hash, "components": gen.components, "loras": gen.params.get("loras", []),
        "rating": gen.rating, "favorite": gen.favorite, "created": gen.created.isoformat(sep=" ", timespec="seconds"),
        "duration_s": gen.duration_s, "parent": gen.parent.id if gen.parent else None,
        "children": [c.id for c in gen.children], "rerunnable": gen.rerunnable, "params": gen.params,
        "tags": [t.to_dict() for t in gen.tags],
    }
    if not gen.rerunnable:
        info["not_rerunnable_because"] = gen.rerun_reason
    if args.json:
        out_json(info)
        return EXIT_OK
    for key, value in info.items():
        if key in ("params", "rerunnable") or value in (None, "", [], {}):
            continue
        if key == "tags":
            value = ", ".join(f"{t['name']} ({t['category']}, {t['source']})" for t in value)
        print(f"{key:>16}: {value}")
    return EXIT_OK


def _history_delete(args: argparse.Namespace) -> int:
    if not args.yes and sys.stdin.isatty():
        answer = input(f"Delete {len(args.ids)} item(s){' and their files' if args.files else ''}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return EXIT_FAILED
    res = _with_service(args, lambda c: c.request("history.delete", {"ids": args.ids, "files": bool(args.files)}))
    for problem in res["problems"]:
        print(f"ddtui: {problem}", file=sys.stderr)
    deleted = res["deleted"]
    if args.json:
        out_json({"deleted": deleted, "files_removed": bool(args.files)})
    else:
        print(f"Deleted {len(deleted)} item(s){' and their files' if args.files else ''}.")
    return EXIT_OK if len(deleted) == len(args.ids) else EXIT_FAILED


# ---------------------------------------------------------------- tag / import / queue

def cmd_tag(args: argparse.Namespace) -> int:
    _, _, store = _store(args)
    try:
        if args.all or args.untagged:
            ids = store.generation_ids(untagged_only=not args.all)
        else:
            ids = list(args.ids)
            known = set(store.generation_ids(among=ids))
            missing = [i for i in ids if i not in known]
            if missing:
                raise CLIError(f"no history item {', '.join('#' + str(m) for m in missing)}", EXIT_FAILED)
        if not ids:
            raise CLIError("give history ids, --untagged or --all")
    finally:
        store.close()

    async def body(client: Any) -> int:
        await client.subscribe()
        jobs = [await client.submit("tag", {"generation_id": gid}, priority=args.priority) for gid in ids]
        if not args.wait:
            print(f"queued {len(jobs)} tagging job(s)") if not args.json else out_json({"jobs": [j["id"] for j in jobs]})
            return EXIT_OK
        pending = {str(j["id"]): j for j in jobs}
        failed = 0
        async for event, _ in client.iter_events():
            if event["job_id"] in pending and event["event"] in ("tagged", "failed", "cancelled"):
                data = event["data"]
                gid = pending.pop(event["job_id"])["generation_id"]
                if event["event"] == "tagged":
                    line = ", ".join(t["name"] for t in data.get("tags", []))
                    out_json({"generation_id": gid, **data}) if args.json else print(f"#{gid}: {line}")
                else:
                    failed += 1
                    print(f"#{gid}: {event['event']} {data.get('message', '')}", file=sys.stderr)
                if not pending:
                    break
        return EXIT_OK if not failed else EXIT_FAILED

    return _with_service(args, body)


def cmd_import(args: argparse.Namespace) -> int:
    paths = [str(Path(p).expanduser().resolve()) for p in args.paths]

    async def body(client: Any) -> dict[str, Any]:
        # Through the service, so importing while it records images is safe and every client sees the new items.
        return await client.request("history.import", {"paths": paths, "tag": not args.no_tag},
                                    timeout=IMPORT_TIMEOUT_S)

    res = _with_service(args, body)
    for r in res["results"]:
        if args.json:
            out_json(r)
        elif r["status"] == "imported":
            print(f"imported  #{r['generation_id']:<6} {r['source']:<9} {r['path']}")
        elif r["status"] == "duplicate":
            print(f"duplicate #{r['generation_id']:<6} {r['source']:<9} {r['path']}")
        else:
            print(f"skipped   {r['path']}: {r['message']}", file=sys.stderr)
    counts = res["counts"]
    if not args.json:
        print(f"{counts['imported']} imported, {counts['duplicate']} already there, {counts['skipped']} skipped")
    return EXIT_OK if counts["skipped"] == 0 else EXIT_FAILED


def cmd_queue(args: argparse.Namespace) -> int:
    if args.action == "list":
        _, _, store = _store(args)
        try:
            jobs = store.jobs(None if args.all else ("queued", "running", "failed"), limit=args.limit)
            paused = store.queue_paused()
        finally:
            store.close()
        if args.json:
            out_json({"paused": paused, "jobs": [j.to_dict() for j in jobs]})
            return EXIT_OK
        print(f"queue {'PAUSED' if paused else 'running'}: {len(jobs)} job(s)")
        for j in jobs:
            what = _clip(j.payload.get("prompt", "") or (f"image #{j.generation_id}" if j.generation_id else ""), 50)
            err = f"  ! {_clip(j.error, 60)}" if j.error and j.state in ("failed", "queued") else ""
            print(f"  {j.id:>5} {j.type:<9} {j.state:<9} p{j.priority:<4} {j.progress * 100:3.0f}% "
                  f"try {j.attempts}/{j.max_attempts}  {what}{err}")
        return EXIT_OK

    async def body(client: Any) -> int:
        if args.action == "cancel":
            res = await client.request("cancel_job", {"job_id": str(args.id), "now": args.now})
        elif args.action == "retry":
            res = await client.request("retry_job", {"job_id": str(args.id)})
        elif args.action == "priority":
            res = await client.request("set_priority", {"job_id": str(args.id), "priority": args.priority})
        else:
            res = await client.request(f"{args.action}_queue")
        out_json(res) if args.json else print(_queue_message(args, res))
        return EXIT_OK

    return _with_service(args, body)


def _queue_message(args: argparse.Namespace, res: dict[str, Any]) -> str:
    if args.action in ("pause", "resume"):
        return "queue paused" if res.get("paused") else "queue resumed"
    job = res.get("job", {})
    return f"job {job.get('id')} is {job.get('state')}"


# ---------------------------------------------------------------- keys / worker

def cmd_keys(args: argparse.Namespace) -> int:
    from .protocol.keys import init_keys, load_public

    home, _ = _context(args)
    if args.action == "init":
        paths = init_keys(home.keys, force=args.force)
        print(f"CURVE keys in {paths.keys_dir}:")
        print(f"  worker (server) public key: {paths.server_public}  -> give it to clients (workers.remote[].server_key)")
        print(f"  client public key:          {paths.client_public}  -> add it to a worker's allowed_clients/")
        return EXIT_OK
    if args.action == "allow":
        src = Path(args.file).expanduser()
        try:
            load_public(src)
        except Exception as exc:  # noqa: BLE001 - any parse failure means not a key file
            raise CLIError(f"{src} is not a CURVE public key file ({exc})") from None
        allowed = home.keys / "allowed_clients"
        allowed.mkdir(parents=True, exist_ok=True)
        target = allowed / (args.name + ".key" if args.name else src.name)
        target.write_bytes(src.read_bytes())
        print(f"allowed client key {target}")
        return EXIT_OK
    if args.action == "show":
        for name in ("server.key", "client.key"):
            p = home.keys / name
            print(f"{name}: {load_public(p).decode() if p.exists() else '(none: run ddtui keys init)'}")
        allowed = sorted((home.keys / "allowed_clients").glob("*.key"))
        print(f"allowed clients: {', '.join(a.name for a in allowed) or '(none)'}")
        return EXIT_OK
    return EXIT_USAGE


def cmd_worker(args: argparse.Namespace) -> int:
    from workers import run_worker

    home, cfg = _context(args)
    if not args.listen.startswith("tcp://"):
        raise CLIError("a headless worker listens on tcp://HOST:PORT (local workers are started by the service)")
    if not (home.keys / "server.key_secret").exists():
        raise CLIError(f"no worker keys in {home.keys}: run `ddtui keys init` first")
    model_dir = Path(args.model_dir).expanduser() if args.model_dir else cfg.model_dir
    return run_worker(args.kind, args.listen, model_dir=model_dir, curve_keys=home.keys,
                      threads=args.threads or cfg.threads(args.kind), name=args.name or f"{args.kind}-headless")


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

    serve = sub.add_parser("serve", help="run the core service (queue and workers) with no interface")
    serve.add_argument("--detach", action="store_true", help="run in the background")
    serve.add_argument("--stop", action="store_true", help="stop the running service")
    serve.add_argument("--status", action="store_true", help="show the service, its workers and queue")
    serve.add_argument("--json", action="store_true")
    serve.set_defaults(handler=cmd_serve)

    gen = sub.add_parser("generate", help="generate images (txt2img, img2img with --init, inpaint with --mask)")
    gen.add_argument("prompt")
    pick = gen.add_mutually_exclusive_group()
    pick.add_argument("--model", help="image model (catalog path, file name or stem)")
    pick.add_argument("--preset", help="image preset name")
    gen.add_argument("-n", type=int, default=1, help="number of images (seed, seed+1, ...)")
    gen.add_argument("--size", help="WxH, multiples of 8 (default: the model's)")
    gen.add_argument("--steps", type=int)
    gen.add_argument("--cfg", type=float)
    gen.add_argument("--guidance", type=float, help="distilled guidance (FLUX)")
    gen.add_argument("--seed", type=int, help="-1 or absent: random")
    gen.add_argument("--sampler")
    gen.add_argument("--scheduler")
    gen.add_argument("--negative", help="negative prompt")
    gen.add_argument("--clip-skip", type=int, dest="clip_skip")
    gen.add_argument("--init", help="init image for img2img")
    gen.add_argument("--strength", type=float, help="img2img/inpaint strength (0-1]")
    gen.add_argument("--mask", help="inpaint mask (white = repaint); needs --init")
    gen.add_argument("--mask-blur", type=int, metavar="PX",
                     help="feather the mask edge by PX pixels (default sd.mask_blur, 10); outside the mask "
                          "the image is kept exactly")
    gen.add_argument("--style", action="append", help="apply a saved style (repeatable)")
    gen.add_argument("--vae-tiling", action="store_true", dest="vae_tiling")
    gen.add_argument("--hires", action="store_true", help="hires fix: first pass, upscale, second pass")
    gen.add_argument("--hires-scale", type=float, default=2.0, dest="hires_scale")
    gen.add_argument("--hires-steps", type=int, default=10, dest="hires_steps")
    gen.add_argument("--hires-strength", type=float, default=0.5, dest="hires_strength")
    gen.add_argument("--hires-upscaler", dest="hires_upscaler", help="ESRGAN model for the hires upscale")
    gen.add_argument("--priority", type=int, default=0)
    gen.add_argument("--no-wait", action="store_true", dest="no_wait", help="queue and return at once")
    gen.add_argument("--json", action="store_true", help="JSON lines of results instead of a progress bar")
    gen.set_defaults(handler=cmd_generate)

    up = sub.add_parser("upscale", help="upscale a history item (or an image file) with an ESRGAN model")
    up.add_argument("image", help="history id or image file")
    up.add_argument("--model", help="ESRGAN model (default: the first in models/esrgan/)")
    up.add_argument("--json", action="store_true")
    up.set_defaults(handler=cmd_upscale)

    ex = sub.add_parser("explore", help="a 3x3 grid of variations around a history item")
    ex.add_argument("id", type=int, help="the anchor: a history id")
    ex.add_argument("--unlock", default="seed",
                    help="comma-separated parameters to vary: prompt, seed, steps, cfg, sampler, scheduler")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(handler=cmd_explore)

    pr = sub.add_parser("prompt", help="LLM prompt tools: enhance, variations, styles")
    pr.add_argument("action", choices=["enhance", "variations", "styles"])
    pr.add_argument("text", nargs="+")
    pr.add_argument("-n", type=int, default=4, help="number of variations")
    pr.add_argument("--save", action="store_true", help="save the proposed styles")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(handler=cmd_prompt)

    hist = sub.add_parser("history", help="search, show, rate, tag, delete or re-run history items")
    hsub = hist.add_subparsers(dest="action", metavar="ACTION", required=True)
    hs = hsub.add_parser("search", help="newest first; every filter combines")
    hs.add_argument("text", nargs="*", help="full-text words (prompt, negative prompt, tags)")
    hs.add_argument("--tag", action="append", help="must have this tag (repeatable: all of them)")
    hs.add_argument("--model")
    hs.add_argument("--min-rating", type=int, default=0, dest="min_rating")
    hs.add_argument("--favorite", action="store_true")
    hs.add_argument("--kind", help="txt2img, img2img, inpaint, upscale, variation, import")
    hs.add_argument("--since", help="from this date (YYYY-MM-DD[THH:MM])")
    hs.add_argument("--until", help="before this date")
    hs.add_argument("--limit", type=int, default=50)
    hs.add_argument("--json", action="store_true")
    hsh = hsub.add_parser("show", help="every parameter, tags and lineage of one item")
    hsh.add_argument("id", type=int)
    hsh.add_argument("--json", action="store_true")
    hr = hsub.add_parser("rate", help="rate an item 0-5")
    hr.add_argument("id", type=int)
    hr.add_argument("rating", type=int)
    hr.add_argument("--json", action="store_true")
    hf = hsub.add_parser("favorite", help="mark (or with --off unmark) a favorite")
    hf.add_argument("id", type=int)
    hf.add_argument("--off", action="store_true")
    ht = hsub.add_parser("tag", help="edit tags: +tag adds, -tag removes (the LLM then leaves them alone)")
    ht.add_argument("id", type=int)
    ht.add_argument("tags", nargs="+")
    ht.add_argument("--json", action="store_true")
    hd = hsub.add_parser("delete", help="delete items (with --files also their image files)")
    hd.add_argument("ids", type=int, nargs="+")
    hd.add_argument("--files", action="store_true")
    hd.add_argument("--yes", "-y", action="store_true", help="do not ask")
    hd.add_argument("--json", action="store_true")
    hrr = hsub.add_parser("rerun", help="re-run an item exactly (same model, parameters and seed)")
    hrr.add_argument("id", type=int)
    hrr.add_argument("--json", action="store_true")
    hist.set_defaults(handler=cmd_history)

    tag = sub.add_parser("tag", help="(re-)tag images with the LLM")
    tag.add_argument("ids", type=int, nargs="*")
    tag.add_argument("--all", action="store_true", help="re-tag the whole history")
    tag.add_argument("--untagged", action="store_true", help="tag every image not tagged yet")
    tag.add_argument("--wait", action="store_true", help="wait and print the tags")
    tag.add_argument("--priority", type=int, default=0)
    tag.add_argument("--json", action="store_true")
    tag.set_defaults(handler=cmd_tag)

    imp = sub.add_parser("import", help="import images made by other tools, with their parameters")
    imp.add_argument("paths", nargs="+", help="image files or folders")
    imp.add_argument("--no-tag", action="store_true", dest="no_tag", help="do not queue tagging")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(handler=cmd_import)

    queue = sub.add_parser("queue", help="list, cancel, retry or reprioritise jobs; pause or resume the queue")
    qsub = queue.add_subparsers(dest="action", metavar="ACTION", required=True)
    ql = qsub.add_parser("list")
    ql.add_argument("--all", action="store_true", help="include finished jobs")
    ql.add_argument("--limit", type=int, default=100)
    ql.add_argument("--json", action="store_true")
    qc = qsub.add_parser("cancel")
    qc.add_argument("id", type=int)
    qc.add_argument("--now", action="store_true", help="stop the running image at once (restarts its worker)")
    qc.add_argument("--json", action="store_true")
    qr = qsub.add_parser("retry")
    qr.add_argument("id", type=int)
    qr.add_argument("--json", action="store_true")
    qp = qsub.add_parser("priority")
    qp.add_argument("id", type=int)
    qp.add_argument("priority", type=int)
    qp.add_argument("--json", action="store_true")
    for name in ("pause", "resume"):
        qx = qsub.add_parser(name)
        qx.add_argument("--json", action="store_true")
    queue.set_defaults(handler=cmd_queue)

    keys = sub.add_parser("keys", help="CURVE keys for remote workers")
    ksub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    ki = ksub.add_parser("init", help="make the worker and client key pairs under <home>/keys")
    ki.add_argument("--force", action="store_true", help="replace existing keys")
    ka = ksub.add_parser("allow", help="allow a client public key on this (worker) machine")
    ka.add_argument("file")
    ka.add_argument("--name")
    ksub.add_parser("show", help="show the public keys and the allow-list")
    keys.set_defaults(handler=cmd_keys)

    worker = sub.add_parser("worker", help="run a headless worker for remote ddtui clients (CURVE + signed)")
    worker.add_argument("kind", choices=["sd", "llm"])
    worker.add_argument("--listen", required=True, help="tcp://0.0.0.0:7001")
    worker.add_argument("--threads", type=int)
    worker.add_argument("--model-dir", dest="model_dir")
    worker.add_argument("--name")
    worker.set_defaults(handler=cmd_worker)

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
    except Exception as exc:  # noqa: BLE001 - only a busy database is turned into a message here
        if "database is locked" not in str(exc):
            raise
        print("ddtui: the history database is locked by another process (still busy after waiting); "
              "nothing was changed, try again", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
