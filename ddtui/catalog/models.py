"""The model catalog: model files under `model_dir`, their sidecar `.json`, and the checks on both.

Layout: `stable-diffusion/`, `vae/`, `text-encoder/`, `lora/`, `esrgan/`, `llm/`, each holding `.gguf`,
`.safetensors`, `.ckpt` or `.pth` files. A main image model may have a sidecar `<file>.json` that names its
components (paths relative to `model_dir`), memory flags, prediction settings and default parameters. One
bad sidecar or missing component marks that model with a problem; the rest of the catalog stays usable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .families import SIDECAR_FAMILIES, ModelInfo, detect

MODEL_EXTENSIONS = (".gguf", ".safetensors", ".ckpt", ".pth")

# Catalog folder -> kind, in the order the catalog lists them.
FOLDERS: dict[str, str] = {
    "stable-diffusion": "image",
    "vae": "vae",
    "text-encoder": "text_encoder",
    "lora": "lora",
    "esrgan": "esrgan",
    "llm": "llm",
}
KIND_FOLDER = {kind: folder for folder, kind in FOLDERS.items()}

# Components a main image model can name, and the stable-diffusion.cpp argument each one feeds.
COMPONENTS: dict[str, str] = {
    "vae": "vae_path",
    "taesd": "taesd_path",
    "clip_l": "clip_l_path",
    "clip_g": "clip_g_path",
    "t5xxl": "t5xxl_path",
    "llm": "llm_path",  # Qwen/Mistral/... text encoders of FLUX.2, Z-Image, Qwen-Image
    "llm_vision": "llm_vision_path",
    "clip_vision": "clip_vision_path",
    "high_noise_diffusion_model": "high_noise_diffusion_model_path",  # Wan 2.2 A14B
    "control_net": "control_net_path",
}

FLAGS = ("clip_on_cpu", "vae_on_cpu", "offload_to_cpu", "flash_attn", "vae_tiling")

# DiffusionDesk's own sidecar form puts components and flags at the top level ("flat"); `ae` is its other
# name for the autoencoder. ddtui's form nests them under `components` and `flags` ("nested").
FLAT_ALIASES = {"ae": "vae"}
FLAT_KEYS = frozenset(COMPONENTS) | frozenset(FLAGS) | frozenset(FLAT_ALIASES)

# Family names a sidecar may give; informative, since the family is read from the tensors (families.py).
FAMILIES = tuple(SIDECAR_FAMILIES)
FORMATS = ("checkpoint", "diffusion_model")
PREDICTIONS = ("eps", "v", "edm_v", "flow", "flux_flow", "flux2_flow")
SAMPLERS = (
    "euler", "euler_a", "heun", "dpm2", "dpm++2s_a", "dpm++2m", "dpm++2mv2", "ipndm", "ipndm_v",
    "lcm", "ddim_trailing", "tcd", "res_multistep", "res_2s", "er_sde",
)
SCHEDULERS = (
    "discrete", "karras", "exponential", "ays", "gits", "sgm_uniform", "simple", "smoothstep",
    "kl_optimal", "lcm", "bong_tangent",
)

# Default generation parameters a sidecar (or preset) may set: name -> (type, check, expectation).
PARAM_RULES: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "steps": (int, lambda v: 1 <= v <= 500, "an integer from 1 to 500"),
    "cfg": ((int, float), lambda v: 0 <= v <= 50, "a number from 0 to 50"),
    "guidance": ((int, float), lambda v: 0 <= v <= 50, "a number from 0 to 50"),
    "sampler": (str, lambda v: v in SAMPLERS, "one of " + ", ".join(SAMPLERS)),
    "scheduler": (str, lambda v: v in SCHEDULERS, "one of " + ", ".join(SCHEDULERS)),
    "width": (int, lambda v: 64 <= v <= 4096 and v % 8 == 0, "a multiple of 8 from 64 to 4096"),
    "height": (int, lambda v: 64 <= v <= 4096 and v % 8 == 0, "a multiple of 8 from 64 to 4096"),
    "clip_skip": (int, lambda v: -1 <= v <= 12, "an integer from -1 to 12"),
    "negative_prompt": (str, lambda v: True, "a string"),
}

# Keys a sidecar may hold, per kind.
_SIDECAR_KEYS: dict[str, set[str]] = {
    "image": {"format", "family", "components", "flags", "prediction", "flow_shift", "defaults", "description"},
    "lora": {"trigger_words", "default_weight", "description", "family"},
    "llm": {"mmproj", "chat_format", "context_size", "description"},
    "mmproj": {"description"},
    "esrgan": {"description", "tile_size"},
    "vae": {"description"},
    "text_encoder": {"description"},
}


class CatalogError(Exception):
    """A model or sidecar problem, with a message that names the file and the key."""


@dataclass
class Sidecar:
    """What a sidecar `.json` says about its model (validated)."""

    format: str = "checkpoint"
    family: str = ""
    components: dict[str, str] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    prediction: str = ""
    flow_shift: float | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    trigger_words: list[str] = field(default_factory=list)
    default_weight: float = 1.0
    mmproj: str = ""
    chat_format: str = ""
    context_size: int = 0
    tile_size: int = 0
    form: str = "nested"  # "nested" (ddtui's) or "flat" (DiffusionDesk's); the file itself is never rewritten

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if key == "form":
                continue
            if value not in ("", None, {}, []) and not (key == "format" and value == "checkpoint"):
                if key == "default_weight" and value == 1.0:
                    continue
                out[key] = value
        return out


@dataclass
class ModelEntry:
    """One model file in the catalog."""

    kind: str
    rel_path: str  # relative to model_dir, with forward slashes: the model's stable name
    path: Path
    size: int
    sidecar: Sidecar | None = None
    problems: list[str] = field(default_factory=list)
    info: ModelInfo | None = None  # image models: the family read from the tensors

    @property
    def family(self) -> str:
        """The family: from the tensors, else the sidecar's word for it, else "unknown"."""
        if self.info is not None and self.info.family != "unknown":
            return self.info.family
        if self.sidecar and self.sidecar.family:
            return SIDECAR_FAMILIES.get(self.sidecar.family, "unknown")
        return "unknown"

    @property
    def name(self) -> str:
        return Path(self.rel_path).stem

    @property
    def usable(self) -> bool:
        return not self.problems

    def component_paths(self, model_dir: Path) -> dict[str, Path]:
        """Absolute paths of the sidecar's components (already checked to stay inside model_dir)."""
        if not self.sidecar:
            return {}
        return {k: resolve_inside(model_dir, v) for k, v in self.sidecar.components.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.rel_path,
            "name": self.name,
            "size": self.size,
            "sidecar": self.sidecar.to_dict() if self.sidecar else None,
            "sidecar_form": self.sidecar.form if self.sidecar else None,
            "family": self.family if self.kind == "image" else None,
            "detected": self.info.to_dict() if self.info else None,
            "problems": list(self.problems),
        }


def resolve_inside(model_dir: Path, rel: str) -> Path:
    """Resolve `rel` under `model_dir`, refusing absolute paths, `..` and symlinks that lead outside."""
    if not isinstance(rel, str) or not rel.strip():
        raise CatalogError("an empty path")
    candidate = Path(rel)
    if candidate.is_absolute() or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise CatalogError(f"path {rel!r} is absolute; give it relative to the model folder")
    if ".." in candidate.parts:
        raise CatalogError(f"path {rel!r} leaves the model folder ('..')")
    root = model_dir.resolve()
    full = (root / candidate).resolve()
    if full != root and root not in full.parents:
        raise CatalogError(f"path {rel!r} leaves the model folder (a link points to {full})")
    return full


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def check_params(params: Any, where: str) -> dict[str, Any]:
    """Validate default generation parameters (sidecars and presets share these rules)."""
    if not isinstance(params, dict):
        raise CatalogError(f"'{where}' must be an object, got {_type_name(params)}")
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in PARAM_RULES:
            raise CatalogError(f"unknown key '{where}.{key}' (known: {', '.join(PARAM_RULES)})")
        typ, ok, expect = PARAM_RULES[key]
        if isinstance(value, bool) or not isinstance(value, typ) or not ok(value):
            raise CatalogError(f"'{where}.{key}' must be {expect}, got {value!r}")
        out[key] = value
    return out


def _existing_file(model_dir: Path, rel: str, key: str) -> str:
    """A sidecar path that must name a file inside `model_dir`; the error names the key."""
    try:
        full = resolve_inside(model_dir, rel)
    except CatalogError as exc:
        raise CatalogError(f"'{key}': {exc}") from None
    if not full.is_file():
        raise CatalogError(f"'{key}': file {rel!r} is missing")
    return rel


def nested_form(data: dict[str, Any], layout: str = "") -> tuple[dict[str, Any], str]:
    """An image sidecar in ddtui's nested form, and which form it was written in ("nested" or "flat").

    DiffusionDesk's flat keys (`vae`/`ae`, `clip_l`, `llm`, `flash_attn`, ...) move under `components` and
    `flags`; a flat sidecar without `format` takes it from `layout` (what the tensors say the file holds) or,
    without that, from whether it names a text encoder. The caller's dict is not changed.
    """
    flat = [k for k in data if k in FLAT_KEYS]
    if not flat:
        return data, "nested"
    mixed = [k for k in ("components", "flags") if k in data]
    if mixed:
        raise CatalogError(f"the sidecar mixes ddtui's nested '{mixed[0]}' with DiffusionDesk's flat key "
                           f"'{flat[0]}'; use one form")
    if "vae" in data and "ae" in data:
        raise CatalogError("the sidecar gives both 'vae' and 'ae' (the same component); keep one")
    out: dict[str, Any] = {k: v for k, v in data.items() if k not in FLAT_KEYS}
    components = {FLAT_ALIASES.get(k, k): data[k] for k in flat if FLAT_ALIASES.get(k, k) in COMPONENTS}
    flags = {k: data[k] for k in flat if k in FLAGS}
    if components:
        out["components"] = components
    if flags:
        out["flags"] = flags
    if "format" not in out:
        text_encoders = {"clip_l", "clip_g", "t5xxl", "llm"} & set(components)
        out["format"] = layout or ("diffusion_model" if text_encoders else "checkpoint")
    return out, "flat"


def parse_sidecar(data: Any, kind: str, model_dir: Path, layout: str = "") -> Sidecar:
    """Validate sidecar JSON for a model of `kind`; raise CatalogError naming the key at fault."""
    if not isinstance(data, dict):
        raise CatalogError(f"the sidecar must be a JSON object, got {_type_name(data)}")
    form = "nested"
    if kind == "image":
        data, form = nested_form(data, layout)
    allowed = _SIDECAR_KEYS.get(kind, {"description"})
    for key in data:
        if key not in allowed:
            raise CatalogError(f"unknown key '{key}' (known for {kind} models: {', '.join(sorted(allowed))})")
    sc = Sidecar(form=form)

    def want(key: str, typ: type | tuple[type, ...], expect: str) -> Any:
        value = data[key]
        if isinstance(value, bool) and typ is not bool or not isinstance(value, typ):
            raise CatalogError(f"'{key}' must be {expect}, got {_type_name(value)}")
        return value

    if "description" in data:
        sc.description = want("description", str, "a string")
    if "format" in data:
        sc.format = want("format", str, "a string")
        if sc.format not in FORMATS:
            raise CatalogError(f"'format' must be one of {', '.join(FORMATS)}, got {sc.format!r}")
    if "family" in data:
        sc.family = want("family", str, "a string")
        if sc.family not in FAMILIES:
            raise CatalogError(f"'family' must be one of {', '.join(FAMILIES)}, got {sc.family!r}")
    if "components" in data:
        comps = want("components", dict, "an object")
        for name, rel in comps.items():
            if name not in COMPONENTS:
                raise CatalogError(f"unknown component 'components.{name}' (known: {', '.join(COMPONENTS)})")
            if not isinstance(rel, str):
                raise CatalogError(f"'components.{name}' must be a path string, got {_type_name(rel)}")
            sc.components[name] = _existing_file(model_dir, rel, f"components.{name}")
    if "flags" in data:
        flags = want("flags", dict, "an object")
        for name, value in flags.items():
            if name not in FLAGS:
                raise CatalogError(f"unknown flag 'flags.{name}' (known: {', '.join(FLAGS)})")
            if not isinstance(value, bool):
                raise CatalogError(f"'flags.{name}' must be true or false, got {_type_name(value)}")
            sc.flags[name] = value
    if "prediction" in data:
        sc.prediction = want("prediction", str, "a string")
        if sc.prediction not in PREDICTIONS:
            raise CatalogError(f"'prediction' must be one of {', '.join(PREDICTIONS)}, got {sc.prediction!r}")
    if "flow_shift" in data:
        sc.flow_shift = float(want("flow_shift", (int, float), "a number"))
    if "defaults" in data:
        sc.defaults = check_params(data["defaults"], "defaults")
    if "trigger_words" in data:
        words = want("trigger_words", list, "a list of strings")
        if not all(isinstance(w, str) and w.strip() for w in words):
            raise CatalogError("'trigger_words' must be a list of non-empty strings")
        sc.trigger_words = [w.strip() for w in words]
    if "default_weight" in data:
        sc.default_weight = float(want("default_weight", (int, float), "a number"))
        if not -5 <= sc.default_weight <= 5:
            raise CatalogError(f"'default_weight' must be from -5 to 5, got {sc.default_weight}")
    if "mmproj" in data:
        sc.mmproj = _existing_file(model_dir, want("mmproj", str, "a path string"), "mmproj")
    if "chat_format" in data:
        sc.chat_format = want("chat_format", str, "a string")
    if "context_size" in data:
        sc.context_size = want("context_size", int, "an integer")
        if sc.context_size < 64:
            raise CatalogError(f"'context_size' must be at least 64, got {sc.context_size}")
    if "tile_size" in data:
        sc.tile_size = want("tile_size", int, "an integer")
    if kind == "image" and sc.format == "diffusion_model" and not (
        sc.components.get("vae") or sc.components.get("taesd")
    ):
        raise CatalogError("a standalone diffusion model needs 'components.vae' or 'components.taesd'")
    return sc


def _gguf_architecture(path: Path) -> str:
    from .synthetic.gguf import GGUFError, read_gguf_metadata

    try:
        return str(read_gguf_metadata(path, max_array_len=0, stop_after="general.architecture")
                   .get("general.architecture", ""))
    except (GGUFError, OSError, ValueError):
        return ""  # an unreadable file is reported by the worker that tries to load it


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".json")


def load_entry(model_dir: Path, path: Path, kind: str) -> ModelEntry:
    """Build one catalog entry, recording (not raising) any problem with the file or its sidecar."""
    rel = path.relative_to(model_dir).as_posix()
    if kind == "llm" and path.suffix.lower() == ".gguf" and _gguf_architecture(path) == "clip":
        kind = "mmproj"  # a vision projector lives beside its LLM but is not one
    problems: list[str] = []
    size = 0
    try:
        resolve_inside(model_dir, rel)
        size = path.stat().st_size
    except CatalogError as exc:
        problems.append(str(exc))
    except OSError as exc:
        problems.append(f"cannot read the file: {exc.strerror}")
    if not problems and size == 0:
        problems.append("the file is empty")
    info = detect(path) if kind == "image" and not problems else None
    sidecar = None
    sc_path = sidecar_path(path)
    if sc_path.exists():
        try:
            data = json.loads(sc_path.read_text(encoding="utf-8"))
            sidecar = parse_sidecar(data, kind, model_dir, info.components if info else "")
        except json.JSONDecodeError as exc:
            problems.append(f"sidecar {sc_path.name}: not valid JSON at line {exc.lineno}: {exc.msg}")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"sidecar {sc_path.name}: cannot read: {exc}")
        except CatalogError as exc:
            problems.append(f"sidecar {sc_path.name}: {exc}")
    return ModelEntry(kind=kind, rel_path=rel, path=path, size=size, sidecar=sidecar, problems=problems, info=info)


class Catalog:
    """A scan of `model_dir`: every model file with its kind, sidecar and problems."""

    def __init__(self, model_dir: Path, entries: list[ModelEntry]) -> None:
        self.model_dir = model_dir
        self.entries = entries

    @classmethod
    def scan(cls, model_dir: Path) -> "Catalog":
        model_dir = Path(model_dir)
        entries: list[ModelEntry] = []
        for folder, kind in FOLDERS.items():
            base = model_dir / folder
            if not base.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
                dirnames.sort()
                for fn in sorted(filenames):
                    if fn.lower().endswith(MODEL_EXTENSIONS):
                        entries.append(load_entry(model_dir, Path(dirpath) / fn, kind))
        return cls(model_dir, entries)

    def of_kind(self, kind: str) -> list[ModelEntry]:
        return [e for e in self.entries if e.kind == kind]

    def find(self, ref: str, kind: str | None = None) -> ModelEntry:
        """Find a model by relative path, file name or stem; raise CatalogError if absent or unusable."""
        candidates = [e for e in self.entries if kind is None or e.kind == kind]
        norm = ref.replace("\\", "/")
        for match in (
            [e for e in candidates if e.rel_path == norm],
            [e for e in candidates if Path(e.rel_path).name == norm],
            [e for e in candidates if e.name == norm],
        ):
            if len(match) == 1:
                entry = match[0]
                if entry.problems:
                    raise CatalogError(f"model {entry.rel_path}: " + "; ".join(entry.problems))
                return entry
            if len(match) > 1:
                raise CatalogError(f"{ref!r} names several models: {', '.join(e.rel_path for e in match)}")
        what = f"{kind} model" if kind else "model"
        raise CatalogError(f"no {what} {ref!r} in {self.model_dir} (see `ddtui models list`)")


def ensure_model_dirs(model_dir: Path) -> None:
    for folder in FOLDERS:
        (model_dir / folder).mkdir(parents=True, exist_ok=True)


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover
