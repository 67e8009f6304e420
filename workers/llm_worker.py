"""The llama.cpp backend of a worker: one chat model (with an optional vision projector), streamed chat.

Owns every call into ``llama_cpp`` (llama-cpp-python 0.3.36): loading a GGUF model with its mmproj
through the mtmd chat handler, OpenAI-style chat completions streamed as ``token`` events, JSON-schema
constrained answers (parsed leniently), and stopping at once on cancel. Runs on the job thread of
``workers.loop``; never imports Textual.

Binding traps handled here: generation past the context raises instead of stopping, and ``max_tokens``
is skipped while the output ends in an incomplete UTF-8 sequence, so a logits processor forces EOS at
the token budget or near the end of the context (grammar-constrained calls stop from the stream loop
instead, since forcing EOS against a grammar leaves no valid token); the schema grammar lets raw
control characters into strings (``json.loads(strict=False)``); n_ctx is rounded up to a multiple of
256 as llama.cpp does internally; remote ``http``/``file`` image URLs are refused (the handler would
fetch them), only ``data:`` URIs are accepted.
"""

from __future__ import annotations

import codecs
import ctypes
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .loop import JobContext, WorkerError, resolve_model_file, sidecar_options

__all__ = ["LLMBackend"]

log = logging.getLogger("ddtui.worker.llm")

DEFAULT_CONTEXT = 4096
CONTEXT_MARGIN = 8  # tokens kept free at the end of the context: the next decode must still fit
MAX_DATA_URI = 32 * 1024 * 1024
ROLES = ("system", "user", "assistant", "tool")


def _check_messages(messages: Any, vision: bool) -> bool:
    """Validate OpenAI-style messages; returns whether any carries an image."""
    if not isinstance(messages, list) or not messages:
        raise WorkerError("bad_params", "messages must be a non-empty list")
    has_image = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise WorkerError("bad_params", f"messages[{i}] needs a role of {', '.join(ROLES)}")
        content = message.get("content")
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise WorkerError("bad_params", f"messages[{i}].content must be a string or a list of parts")
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                if not isinstance(url, str) or not url.startswith("data:image/"):
                    # the chat handler would fetch http(s)/file URLs: never let a client make us do that
                    raise WorkerError("bad_params", f"messages[{i}]: images must be data:image/... URIs")
                if len(url) > MAX_DATA_URI:
                    raise WorkerError("bad_params", f"messages[{i}]: image data URI is too large")
                has_image = True
                continue
            raise WorkerError("bad_params", f"messages[{i}]: unsupported content part {kind!r}")
    if has_image and not vision:
        raise WorkerError("bad_params", "this model has no vision projector (mmproj) for image parts")
    return has_image


class _Sampler:
    """Logits processor that streams, counts and stops: the worker's own token loop inside llama.cpp's.

    Called once per sampled token on the job thread; the token sampled by the previous call is the last
    of ``input_ids``, so text is decoded incrementally here (O(1) per token) and, without a grammar,
    sent as ``token`` events straight away. Without a grammar it also forces EOS past ``max_tokens``,
    near the end of the context and on cancel. Exceptions are caught: ctypes would only print them.
    """

    def __init__(self, llm: Any, max_tokens: int, force: bool, ignore_eos: bool, cancelled: Any,
                 emit: Any) -> None:
        self.llm = llm
        self.eos = llm.token_eos()
        self.max_tokens = max_tokens
        self.limit = llm.n_ctx() - CONTEXT_MARGIN
        self.force = force
        self.ignore_eos = ignore_eos
        self.cancelled = cancelled
        self.emit = emit  # None: someone else streams (grammar mode reads the binding's chunks)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.prompt_tokens: int | None = None
        self.tokens = 0
        self.position = 0
        self.parts: list[str] = []
        self.forced = ""  # why EOS was forced ("length", "cancelled"), "" when the model stopped itself

    def near_end(self) -> bool:
        return bool(self.position >= self.limit)

    def _take(self, token: int) -> None:
        if llama_vocab_is_eog(self.llm, token):
            return
        self.tokens += 1
        if self.emit is None:
            return
        text = self.decoder.decode(self.llm.detokenize([token]))
        if text:
            self.parts.append(text)
            self.emit(text)

    def finish(self) -> str:
        if self.emit is not None:
            tail = self.decoder.decode(b"", final=True)
            if tail:
                self.parts.append(tail)
                self.emit(tail)
        return "".join(self.parts)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        try:
            if self.prompt_tokens is None:
                self.prompt_tokens = len(input_ids)  # the first call sees exactly the prompt (images included)
            else:
                self._take(int(input_ids[-1]))
            self.position = len(input_ids)
            if self.force:
                if self.cancelled():
                    self.forced = "cancelled"
                elif self.tokens >= self.max_tokens or self.position >= self.limit:
                    self.forced = "length"
                if self.forced:
                    scores[:] = -np.inf
                    scores[self.eos] = 0.0
                elif self.ignore_eos:
                    scores[eog_ids(self.llm)] = -np.inf
        except Exception:
            log.exception("sampler hook")
        return scores


def llama_vocab_is_eog(llm: Any, token: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))


def eog_ids(llm: Any) -> np.ndarray:
    """Every end-of-generation token (EOS, EOT, <|im_end|>, ...), cached on the model object."""
    ids = getattr(llm, "_ddtui_eog_ids", None)
    if ids is None:
        import llama_cpp

        vocab = llm._model.vocab
        ids = np.array([t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)], dtype=np.intp)
        llm._ddtui_eog_ids = ids
    return ids


class LLMBackend:
    """llama.cpp behind the worker loop (job thread only, apart from ``describe``)."""

    kind = "llm"
    capabilities = ["chat", "json_schema", "vision", "stream"]
    job_types = frozenset({"load_model", "chat"})

    def __init__(self, model_dir: Path, threads: int) -> None:
        import importlib.metadata
        import platform

        import llama_cpp

        from .devices import backend_of

        self.model_dir = Path(model_dir).resolve()
        self.threads = threads
        self._llama_cpp = llama_cpp
        self._llm: Any = None
        self._signature: str | None = None
        self._vision = False
        _quiet_mtmd()
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
        backend = backend_of(folder=Path(llama_cpp.__file__).parent / "lib") if gpu else "cpu"
        self._describe = {
            "backend": backend if backend != "cpu" or not gpu else "gpu",
            "threads": threads,
            "versions": {
                "python": platform.python_version(),
                "llama_cpp": importlib.metadata.version("llama-cpp-python"),
                "pyzmq": __import__("zmq").__version__,
            },
        }

    @property
    def loaded_model(self) -> str | None:
        return self._signature if self._llm is not None else None

    def describe(self) -> dict[str, Any]:
        return self._describe

    def run(self, ctx: JobContext) -> dict[str, Any]:
        if ctx.msg_type == "chat":
            return self._chat(ctx)
        raise WorkerError("unsupported", f"llm worker cannot run {ctx.msg_type}")

    def close(self) -> None:
        self._free()

    # ------------------------------------------------------------------ model
    def _free(self) -> None:
        if self._llm is not None:
            # close explicitly: the handler's finaliser fails at interpreter exit (closed devnull file)
            self._llm.close()
            self._llm = None
        self._signature = None
        self._vision = False

    def ensure_model(self, ctx: JobContext, rel: Any, options: Any) -> tuple[bool, float]:
        if rel is None and self._llm is not None:
            return False, 0.0
        if rel is None:
            raise WorkerError("bad_params", "no model loaded and none named")
        path = resolve_model_file(self.model_dir, rel, "model")
        if options is None:
            options = sidecar_options(path, ("mmproj", "context_size", "chat_format"))
        if not isinstance(options, dict):
            raise WorkerError("bad_params", "options must be an object")
        mmproj_rel = options.get("mmproj") or ""
        mmproj = resolve_model_file(self.model_dir, mmproj_rel, "mmproj") if mmproj_rel else None
        n_ctx = options.get("context_size") or DEFAULT_CONTEXT
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or not 64 <= n_ctx <= 1 << 20:
            raise WorkerError("bad_params", "options.context_size must be an integer from 64")
        n_ctx = (n_ctx + 255) // 256 * 256  # llama.cpp pads it; a different n_ctx desyncs Llama.input_ids
        n_gpu_layers = options.get("n_gpu_layers", -1)
        chat_format = options.get("chat_format") or None
        stamp = [str(rel), path.stat().st_size, path.stat().st_mtime_ns, mmproj_rel,
                 mmproj.stat().st_mtime_ns if mmproj else 0, n_ctx, n_gpu_layers, chat_format]
        signature = f"{rel}#{hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:12]}"
        if self._llm is not None and signature == self._signature:
            return False, 0.0
        self._free()
        ctx.set_state("loading")
        ctx.progress(0, 1, "loading", force=True)
        start = time.monotonic()
        from llama_cpp import Llama, llama_chat_format

        try:
            handler = None
            if mmproj is not None:
                handler = llama_chat_format.MTMDChatHandler(clip_model_path=str(mmproj), verbose=False,
                                                            use_gpu=self._describe["backend"] != "cpu")
            self._llm = Llama(
                model_path=str(path), n_ctx=n_ctx, n_threads=self.threads, n_threads_batch=self.threads,
                n_gpu_layers=n_gpu_layers, chat_handler=handler, chat_format=chat_format, verbose=False,
            )
        except Exception as exc:
            self._llm = None
            text = str(exc).lower()
            reason = "out_of_memory" if "memory" in text or "alloc" in text else "load_failed"
            raise WorkerError(reason, f"{type(exc).__name__}: {exc}") from None
        finally:
            ctx.set_state("busy")
        self._signature = signature
        self._vision = mmproj is not None
        seconds = time.monotonic() - start
        ctx.progress(1, 1, "loading", force=True)
        log.info("loaded %s in %.2fs", signature, seconds)
        return True, seconds

    # ------------------------------------------------------------------ chat
    def _chat(self, ctx: JobContext) -> dict[str, Any]:
        params = ctx.params
        messages = ctx.content.get("messages")
        loaded, load_seconds = self.ensure_model(ctx, params.get("model"), params.get("options"))
        _check_messages(messages, self._vision)
        llm = self._llm
        n_ctx = llm.n_ctx()
        max_tokens = params.get("max_tokens", 512)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise WorkerError("bad_params", "max_tokens must be a positive integer")
        max_tokens = min(max_tokens, n_ctx)
        temperature = params.get("temperature", 0.7)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 5:
            raise WorkerError("bad_params", "temperature must be a number from 0 to 5")
        seed = params.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise WorkerError("bad_params", "seed must be a non-negative integer")
        schema = params.get("json_schema")
        if schema is not None and not isinstance(schema, dict):
            raise WorkerError("bad_params", "json_schema must be an object")
        stream = params.get("stream", True) is not False
        grammar = schema is not None
        index = 0

        def emit(text: str) -> None:
            nonlocal index
            if stream:
                ctx.emit("token", {"text": text, "index": index})
            else:
                ctx.touch()
            index += 1
            if index % 16 == 0:
                ctx.progress(sampler.tokens, max_tokens, "sampling")

        # without a grammar our hook streams and stops; with one, forcing EOS would leave no valid
        # token, so the binding's own stream (valid UTF-8 under a grammar) is read and abandoned instead
        sampler = _Sampler(llm, max_tokens, force=not grammar, ignore_eos=bool(params.get("ignore_eos")),
                           cancelled=ctx.cancelled, emit=None if grammar else emit)
        from llama_cpp import LogitsProcessorList

        kwargs: dict[str, Any] = dict(
            messages=messages, stream=grammar, temperature=float(temperature),
            # one more than ours: our hook stops first, the binding's own check is unreliable (module doc)
            max_tokens=max_tokens if grammar else max_tokens + 1,
            logits_processor=LogitsProcessorList([sampler]),
        )
        if seed is not None:
            kwargs["seed"] = seed
        if grammar:
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        for name in ("top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty"):
            if isinstance(params.get(name), (int, float)) and not isinstance(params.get(name), bool):
                kwargs[name] = params[name]

        status = "done"
        finish = None
        ctx.progress(0, max_tokens, "sampling", force=True)
        chunks = None
        parts: list[str] = []
        try:
            result = llm.create_chat_completion(**kwargs)
            if not grammar:
                finish = result["choices"][0].get("finish_reason")
            else:
                chunks = result
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    finish = choice.get("finish_reason") or finish
                    text = choice.get("delta", {}).get("content")
                    if text:
                        parts.append(text)
                        emit(text)
                    if ctx.cancelled():
                        status = "cancelled"
                        break
                    if sampler.near_end():
                        finish = "length"
                        break
        except WorkerError:
            raise
        except ValueError as exc:
            if "exceed" in str(exc).lower() or "n_ctx" in str(exc):
                raise WorkerError("context_overflow", str(exc)) from None
            raise WorkerError("bad_params", f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            text = str(exc).lower()
            reason = "out_of_memory" if "memory" in text or "alloc" in text else "generation_failed"
            raise WorkerError(reason, f"{type(exc).__name__}: {exc}") from None
        finally:
            if chunks is not None and hasattr(chunks, "close"):
                chunks.close()  # stops generation now instead of at garbage collection
        full = "".join(parts) if grammar else sampler.finish()
        if sampler.forced == "cancelled" or ctx.cancelled():
            status = "cancelled"
        if sampler.forced == "length":
            finish = "length"  # the EOS was ours, not the model's
        info: dict[str, Any] = {"tokens": sampler.tokens, "elapsed": round(ctx.elapsed(), 4),
                                "prompt_tokens": sampler.prompt_tokens or 0, "finish_reason": finish,
                                "loaded": loaded, "load_seconds": round(load_seconds, 4),
                                "model": self._signature}
        if grammar:
            try:
                info["json"] = json.loads(full, strict=False)  # the schema grammar lets control chars through
            except ValueError:
                info["json_error"] = "the answer is not complete JSON"
        return {"status": status, "text": full, "info": info}


def _quiet_mtmd() -> None:
    """mtmd/clip ignore verbose=False; route them through llama-cpp-python's level-aware callback."""
    try:
        from llama_cpp import _logger, mtmd_cpp

        mtmd_cpp.mtmd_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_helper_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    except Exception as exc:  # an older/newer binding without mtmd logging hooks
        log.debug("mtmd log routing unavailable: %s", exc)
