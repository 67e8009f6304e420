"""The home folder and `config.json`: where things live, defaults, validation with clear errors.

A home holds config.json, history.db, outputs/, a thumbnail cache and keys/. A missing config file is
written with defaults; a wrong type, an unknown key or bad JSON stops with a `ConfigError` that names the
file, the key and what was expected.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .atomic import atomic_file

HOME_ENV = "DDTUI_HOME"


class ConfigError(Exception):
    """config.json is unreadable or invalid; the message names the file, the key and what was expected."""


# One spec entry per key: (expected type or tuple of types, default). Nested dicts are sections.
# A type of `list[str]`-like content is described by ("list", item_type).
_SYSTEM_TAG = (
    "You label images for a searchable history. Answer only with JSON: a list of short tags, each with a "
    "category: subject, style or mood."
)
_SYSTEM_ENHANCE = (
    "You improve prompts for an image model. Keep the user's subject and intent, add concrete visual detail "
    "(lighting, composition, medium), and answer with the prompt alone."
)
_SYSTEM_VARIATIONS = (
    "You write subtle rewrites of an image prompt. Keep the subject and style; vary wording and small details."
)
_SYSTEM_STYLES = (
    "You extract reusable styles from image prompts: the parts that describe medium, lighting, mood and "
    "technique, separated from the subject."
)

DEFAULTS: dict[str, Any] = {
    "paths": {
        "model_dir": "",  # empty: <home>/models
        "output_dir": "",  # empty: <home>/outputs
    },
    "llm": {
        "default_model": "",  # relative to model_dir, e.g. "llm/my-model.gguf"
        "default_mmproj": "",
        "threads": 0,  # 0: chosen from the CPU count
        "context_size": 4096,
        "idle_timeout": 600,  # seconds before an idle LLM is unloaded; 0 keeps it loaded
        "system_prompts": {
            "tagging": _SYSTEM_TAG,
            "enhance": _SYSTEM_ENHANCE,
            "variations": _SYSTEM_VARIATIONS,
            "styles": _SYSTEM_STYLES,
        },
    },
    "sd": {
        "default_model": "",  # relative to model_dir, e.g. "stable-diffusion/my-model.safetensors"
        "threads": 0,
        "preview_interval": 1,  # send a live preview every N steps; 0 turns previews off
        "preview_size": 128,
        "mask_blur": 10,  # pixels of feather where an inpainted area meets the kept image
    },
    "workers": {
        "local_sd": True,
        "local_llm": True,
        "remote": [],  # [{"name":..., "endpoint": "tcp://host:7001", "server_key": "keys/remote.key"}]
        "heartbeat_interval": 1.0,
        "heartbeat_timeout": 10.0,
        "max_restarts": 3,
        "restart_window": 300.0,
        "max_message_mb": 64,
    },
    "queue": {
        "max_attempts": 3,
        "tagging_waits_for_images": True,
        "auto_tag": True,
    },
    "timeouts": {
        "load_model": 600.0,
        "generate": 3600.0,
        "chat": 300.0,
        "connect": 10.0,
    },
    "ui": {
        "theme": "ddtui-dark",
        "image_protocol": "auto",  # auto, kitty, sixel, halfcell, none
        "keys": {},  # action id -> key, e.g. {"generate.submit": "ctrl+g"}
    },
}

_IMAGE_PROTOCOLS = ("auto", "kitty", "sixel", "halfcell", "none")


@dataclass(frozen=True)
class Home:
    """The folders and files of one ddtui home."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    @property
    def db_file(self) -> Path:
        return self.root / "history.db"

    @property
    def thumbnails(self) -> Path:
        return self.root / "cache" / "thumbnails"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def run(self) -> Path:
        """Runtime files of the service (socket, pid, client key); owner-only."""
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> "Home":
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in (self.thumbnails, self.logs):
            sub.mkdir(parents=True, exist_ok=True)
        for private in (self.keys, self.run):
            private.mkdir(parents=True, exist_ok=True)
            os.chmod(private, 0o700)
        return self


def default_home() -> Path:
    """`DDTUI_HOME`, else the per-user data folder (XDG_DATA_HOME/ddtui)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "ddtui"


def resolve_home(path: str | os.PathLike[str] | None = None) -> Home:
    return Home(Path(path).expanduser().resolve() if path else default_home().resolve())


class Config:
    """Validated configuration; values are read with `cfg["llm"]["threads"]` or `cfg.get("llm.threads")`."""

    def __init__(self, data: dict[str, Any], home: Home, path: Path | None = None) -> None:
        self.data = data
        self.home = home
        self.path = path

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    @property
    def model_dir(self) -> Path:
        raw = self.data["paths"]["model_dir"]
        return _under_home(self.home, raw, "models")

    @property
    def output_dir(self) -> Path:
        raw = self.data["paths"]["output_dir"]
        return _under_home(self.home, raw, "outputs")

    def threads(self, section: str) -> int:
        n = int(self.data[section]["threads"])
        return n if n > 0 else max(1, (os.cpu_count() or 2) // 2)

    def save(self) -> None:
        """Write atomically so a crash never leaves half a config file."""
        validate(self.data, self.path or self.home.config_file)
        write_json_atomic(self.path or self.home.config_file, self.data)

    def replace(self, data: dict[str, Any]) -> list[str]:
        """Check `data` (ConfigError naming the key), write it, and return the dotted keys that changed."""
        path = self.path or self.home.config_file
        merged = validate(data, path)
        before, after = flat(self.data), flat(merged)
        changed = [key for key in after if after[key] != before.get(key)]
        if changed:
            write_json_atomic(path, merged)
        self.data = merged
        return changed

    def with_changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        """A copy of the configuration with some dotted keys set (checked when it is saved)."""
        data = copy.deepcopy(self.data)
        for dotted, value in changes.items():
            if not isinstance(dotted, str) or not dotted:
                raise ConfigError(f"a configuration key must be dotted text, got {dotted!r}")
            set_dotted(data, dotted, value)
        return data

    def reload(self) -> list[str]:
        """Read the file again (another client saved it); returns the dotted keys that changed."""
        fresh = load_config(self.home)
        before, after = flat(self.data), flat(fresh.data)
        self.data = fresh.data
        return [key for key in after if after[key] != before.get(key)]


def leaves(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, default) for every editable value; ui.keys and lists are single values."""
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and dotted != "ui.keys":
            yield from leaves(value, dotted)
        else:
            yield dotted, value


def get_dotted(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node[part]
    return node


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def flat(data: dict[str, Any]) -> dict[str, str]:
    """Every configuration value by its dotted key, as JSON text (for telling what changed)."""
    out = {}
    for key, _ in leaves(DEFAULTS):
        try:
            out[key] = json.dumps(get_dotted(data, key), sort_keys=True)
        except (KeyError, TypeError):
            out[key] = ""
    return out


def _under_home(home: Home, raw: str, default: str) -> Path:
    if not raw:
        return home.root / default
    p = Path(raw).expanduser()
    return p if p.is_absolute() else (home.root / p)


def write_json_atomic(path: Path, data: Any) -> None:
    with atomic_file(path) as fh:
        fh.write((json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _check(value: Any, default: Any, where: str, file: Path) -> Any:
    """Validate `value` against the shape of `default`; return it merged with defaults for sections."""
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: '{where}' must be an object, got {_type_name(value)}")
        if where == "ui.keys":
            for k, v in value.items():
                if not isinstance(v, str) or not v:
                    raise ConfigError(f"{file}: 'ui.keys.{k}' must be a key name string, got {_type_name(v)}")
            return dict(value)
        merged: dict[str, Any] = {}
        for key, val in value.items():
            if key not in default:
                known = ", ".join(sorted(default)) or "(none)"
                raise ConfigError(f"{file}: unknown key '{_join(where, key)}' (known keys here: {known})")
            merged[key] = _check(val, default[key], _join(where, key), file)
        for key, dval in default.items():
            if key not in merged:
                merged[key] = copy.deepcopy(dval)
        return merged
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{file}: '{where}' must be true or false, got {_type_name(value)}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{file}: '{where}' must be an integer, got {_type_name(value)}")
        if value < 0:
            raise ConfigError(f"{file}: '{where}' must be 0 or more, got {value}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{file}: '{where}' must be a number, got {_type_name(value)}")
        if value < 0:
            raise ConfigError(f"{file}: '{where}' must be 0 or more, got {value}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{file}: '{where}' must be a string, got {_type_name(value)}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{file}: '{where}' must be a list, got {_type_name(value)}")
        if where == "workers.remote":
            return [_check_remote(item, f"{where}[{i}]", file) for i, item in enumerate(value)]
        return value
    raise AssertionError(f"no rule for {where}")  # pragma: no cover - the defaults table is ours


_REMOTE_KEYS = {"name": str, "endpoint": str, "server_key": str, "kind": str}


def _check_remote(item: Any, where: str, file: Path) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ConfigError(f"{file}: '{where}' must be an object with name, endpoint and server_key")
    for key, val in item.items():
        if key not in _REMOTE_KEYS:
            raise ConfigError(f"{file}: unknown key '{where}.{key}' (known keys here: {', '.join(sorted(_REMOTE_KEYS))})")
        if not isinstance(val, _REMOTE_KEYS[key]):
            raise ConfigError(f"{file}: '{where}.{key}' must be a string, got {_type_name(val)}")
    for key in ("name", "endpoint"):
        if not item.get(key):
            raise ConfigError(f"{file}: '{where}.{key}' is required")
    if not item["endpoint"].startswith("tcp://"):
        raise ConfigError(f"{file}: '{where}.endpoint' must be a tcp:// address, got {item['endpoint']!r}")
    kind = item.get("kind", "sd")
    if kind not in ("sd", "llm"):
        raise ConfigError(f"{file}: '{where}.kind' must be 'sd' or 'llm', got {kind!r}")
    return {"name": item["name"], "endpoint": item["endpoint"], "server_key": item.get("server_key", ""), "kind": kind}


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def validate(data: Any, file: Path) -> dict[str, Any]:
    """Return `data` merged over the defaults, or raise ConfigError naming the file and the key."""
    merged = _check(data, DEFAULTS, "", file)
    proto = merged["ui"]["image_protocol"]
    if proto not in _IMAGE_PROTOCOLS:
        raise ConfigError(f"{file}: 'ui.image_protocol' must be one of {', '.join(_IMAGE_PROTOCOLS)}, got {proto!r}")
    if not 0 <= merged["sd"]["mask_blur"] <= 256:
        raise ConfigError(f"{file}: 'sd.mask_blur' must be from 0 to 256 pixels, got {merged['sd']['mask_blur']}")
    if merged["sd"]["preview_size"] < 16:
        raise ConfigError(f"{file}: 'sd.preview_size' must be at least 16, got {merged['sd']['preview_size']}")
    if merged["queue"]["max_attempts"] < 1:
        raise ConfigError(f"{file}: 'queue.max_attempts' must be at least 1")
    return dict(merged)


def load_config(home: Home) -> Config:
    """Read `<home>/config.json`, writing it with defaults when missing."""
    home.ensure()
    path = home.config_file
    if not path.exists():
        write_json_atomic(path, DEFAULTS)
        return Config(copy.deepcopy(DEFAULTS), home, path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return Config(validate(raw, path), home, path)
