"""Registry of ddtui message types: direction, required content fields, buffers.

This module owns *what* may travel on the wire; ``wire.py`` owns *how*.
Every type is one line in ``_TABLE``: name, direction(s), required fields,
optional fields and the minimum number of binary buffers. Fields are written
``name:type`` with types ``str``, ``int``, ``number``, ``bool``, ``dict``,
``list`` and a trailing ``?`` for "may also be null". Unknown extra content
keys are allowed so a newer peer can add fields without breaking an older one.

``validate(msg)`` raises ``UnknownMessageType`` for a type not registered
and ``MalformedMessage`` for missing/mistyped fields or missing buffers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Sequence

from .wire import MalformedMessage, Message, UnknownMessageType

__all__ = [
    "Direction",
    "MessageSpec",
    "REGISTRY",
    "register",
    "validate",
    "types_for",
]


class Direction(StrEnum):
    REQUEST = "client->worker"
    EVENT = "worker->client"
    CORE_REQUEST = "client->core"
    CORE_EVENT = "core->client"


_REQ = frozenset({Direction.REQUEST})
_EVT = frozenset({Direction.EVENT})
_BOTH = frozenset({Direction.REQUEST, Direction.EVENT})  # heartbeat: ping and pong
_CREQ = frozenset({Direction.CORE_REQUEST})
_CEVT = frozenset({Direction.CORE_EVENT})

_CHECKS: dict[str, Any] = {
    "str": lambda v: isinstance(v, str),
    # bool is an int subclass; True is not a step count
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}


def _fields(spec: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in spec.split():
        name, _, typ = item.partition(":")
        if typ.rstrip("?") not in _CHECKS:
            raise ValueError(f"unknown field type {typ!r} in {item!r}")
        out.append((name, typ))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MessageSpec:
    name: str
    directions: frozenset[Direction]
    required: tuple[tuple[str, str], ...] = ()
    optional: tuple[tuple[str, str], ...] = ()
    min_buffers: int = 0
    doc: str = ""

    @classmethod
    def parse(
        cls,
        name: str,
        directions: frozenset[Direction],
        required: str = "",
        optional: str = "",
        min_buffers: int = 0,
        doc: str = "",
    ) -> MessageSpec:
        return cls(name, frozenset(directions), _fields(required), _fields(optional), min_buffers, doc)


# name, directions, required, optional, min buffers, doc
_TABLE: list[tuple[str, frozenset[Direction], str, str, int, str]] = [
    # requests: client -> worker
    ("hello_request", _REQ, "", "client:str", 0, "ask a worker for its capabilities"),
    ("load_model", _REQ, "model:str", "kind:str options:dict", 0, "load or switch the model"),
    ("generate", _REQ, "job_id:str params:dict", "preview_every:int", 0, "txt2img/img2img; init images as buffers"),
    ("upscale", _REQ, "job_id:str params:dict", "image_path:str", 0, "upscale buffer 0 or image_path"),
    ("chat", _REQ, "job_id:str messages:list", "params:dict", 0, "LLM chat completion, streamed as token events"),
    ("cancel", _REQ, "job_id:str", "", 0, "cancel a running job"),
    ("shutdown", _REQ, "", "reason:str", 0, "ask the worker to exit cleanly"),
    ("heartbeat", _BOTH, "", "seq:int", 0, "ping (request) and pong (event)"),
    ("status", _REQ, "", "", 0, "ask for a state event"),
    # events: worker -> client
    ("hello", _EVT,
     "backend:str device:str vram_total:int vram_free:int versions:dict loaded_model:str?",
     "capabilities:list pid:int", 0, "worker capabilities"),
    ("ack", _EVT, "", "job_id:str", 0, "request accepted (parent header names it)"),
    ("progress", _EVT, "job_id:str step:int steps:int phase:str elapsed:number", "", 0, "sampling progress"),
    ("preview", _EVT, "job_id:str step:int", "width:int height:int", 1, "small PNG preview in buffer 0"),
    ("image", _EVT, "job_id:str index:int info:dict", "", 1, "one finished PNG in buffer 0"),
    ("token", _EVT, "job_id:str text:str", "index:int", 0, "streamed LLM text"),
    ("result", _EVT, "job_id:str status:str", "info:dict elapsed:number text:str", 0, "job finished"),
    ("error", _EVT, "reason:str message:str", "job_id:str?", 0, "failure with a reason code"),
    ("state", _EVT, "state:str", "job_id:str? loaded_model:str? vram_free:int", 0, "worker state snapshot"),
    # core service API: client -> core
    ("submit", _CREQ, "kind:str params:dict", "priority:int group:str", 0, "queue a job (generate/upscale/tag/chat)"),
    ("cancel_job", _CREQ, "job_id:str", "now:bool", 0, "cancel a queued or running job (now: end the image)"),
    ("cancel_group", _CREQ, "group:str", "", 0, "cancel every active job submitted together"),
    ("retry_job", _CREQ, "job_id:str", "", 0, "requeue a failed job"),
    ("set_priority", _CREQ, "job_id:str priority:int", "", 0, "change a job's priority"),
    ("pause_queue", _CREQ, "", "", 0, "stop dispatching new jobs"),
    ("resume_queue", _CREQ, "", "", 0, "resume dispatching"),
    ("subscribe", _CREQ, "", "topics:list job_id:str group:str", 0, "receive job_event messages"),
    ("unsubscribe", _CREQ, "", "", 0, "stop receiving job events"),
    ("core_status", _CREQ, "", "", 0, "workers, queue and service state"),
    ("core_ping", _CREQ, "", "", 0, "liveness of a client and of the service"),
    ("stop_service", _CREQ, "", "", 0, "stop the service (jobs stay queued)"),
    # every write a client makes (each answered by a reply and announced by one change event)
    ("history.rate", _CREQ, "ids:list rating:int", "", 0, "rate history items 0-5"),
    ("history.favorite", _CREQ, "ids:list favorite:bool", "", 0, "mark or unmark favorites"),
    ("history.tags", _CREQ, "id:int", "add:list remove:list set:list", 0, "a user's tag edit"),
    ("history.delete", _CREQ, "ids:list", "files:bool", 0, "delete items (and their image files)"),
    ("history.import", _CREQ, "paths:list", "tag:bool", 0, "import image files or folders"),
    ("style.save", _CREQ, "name:str prompt:str", "id:int? negative_prompt:str by_name:bool", 0,
     "create, update or (by_name) overwrite a style"),
    ("style.delete", _CREQ, "id:int", "", 0, "delete a style"),
    ("snippet.save", _CREQ, "label:str content:str", "id:int? category:str", 0, "create or update a snippet"),
    ("snippet.delete", _CREQ, "id:int", "", 0, "delete a snippet"),
    ("snippet.use", _CREQ, "id:int", "", 0, "count one use of a snippet"),
    ("preset.save", _CREQ, "kind:str preset:dict", "", 0, "create or update an image or LLM preset"),
    ("preset.delete", _CREQ, "kind:str id:int", "", 0, "delete a preset"),
    ("setting.set", _CREQ, "key:str", "", 0, "store one interface setting (any JSON value in 'value')"),
    ("config.save", _CREQ, "", "config:dict changes:dict", 0, "check and write config.json"),
    # core service API: core -> client
    ("job_event", _CEVT, "job_id:str event:str", "data:dict", 0, "a job changed or produced output"),
    ("queue_state", _CEVT, "paused:bool jobs:list", "", 0, "queue snapshot"),
    ("reply", _CEVT, "ok:bool", "result:dict error:str? reason:str", 0, "answer to a core request"),
]

_registry: dict[str, MessageSpec] = {}
REGISTRY: Mapping[str, MessageSpec] = MappingProxyType(_registry)


def register(spec: MessageSpec, *, replace: bool = False) -> MessageSpec:
    """Add a type at runtime (extensions); the table above is the normal place."""
    if spec.name in _registry and not replace:
        raise ValueError(f"message type {spec.name!r} already registered")
    _registry[spec.name] = spec
    return spec


for _row in _TABLE:
    register(MessageSpec.parse(*_row))
del _row


def types_for(direction: Direction | str) -> frozenset[str]:
    """All type names that may travel in ``direction``."""
    return frozenset(name for name, spec in _registry.items() if direction in spec.directions)


def _check(content: Mapping[str, Any], fields: tuple[tuple[str, str], ...], required: bool, msg_type: str) -> None:
    for name, typ in fields:
        if name not in content:
            if required:
                raise MalformedMessage(f"{msg_type}: missing field {name!r}", msg_type=msg_type)
            continue
        value = content[name]
        if value is None and typ.endswith("?"):
            continue
        if not _CHECKS[typ.rstrip("?")](value):
            raise MalformedMessage(
                f"{msg_type}: field {name!r} should be {typ}, got {type(value).__name__}", msg_type=msg_type
            )


def validate(msg: Message | Mapping[str, Any]) -> MessageSpec:
    """Check type is registered, content is a dict with the right fields, enough buffers."""
    header: Any
    content: Any
    buffers: Sequence[Any]
    if isinstance(msg, Message):
        header, content, buffers = msg.header, msg.content, msg.buffers
    else:
        header, content, buffers = msg.get("header") or {}, msg.get("content"), msg.get("buffers") or ()
    msg_type = header.get("msg_type") if isinstance(header, Mapping) else None
    spec = _registry.get(msg_type) if isinstance(msg_type, str) else None
    if spec is None:
        raise UnknownMessageType(f"unregistered msg_type {msg_type!r}", msg_type=msg_type if isinstance(msg_type, str) else None)
    assert isinstance(msg_type, str)  # a registered type was found for it
    if not isinstance(content, dict):
        raise MalformedMessage(f"{msg_type}: content is not a dict", msg_type=msg_type)
    _check(content, spec.required, True, msg_type)
    _check(content, spec.optional, False, msg_type)
    if len(buffers) < spec.min_buffers:
        raise MalformedMessage(f"{msg_type}: needs {spec.min_buffers} buffer(s), got {len(buffers)}", msg_type=msg_type)
    return spec
