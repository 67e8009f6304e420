"""Integration tests: the synthetic tiny LLM + mmproj run in the real llama.cpp.

Owns the end-to-end check of ``ddtui.catalog.synthetic.llm`` (and the GGUF
writer/reader in ``ddtui.catalog.synthetic.gguf``) against the real
``llama-cpp-python`` 0.3.36 binding: the tiny LLaMA loads with its embedded
byte-level BPE tokenizer and ChatML template, answers chat completions
(non-streamed, streamed, stream abandoned mid-way), produces JSON under a JSON
schema, differs between seeds, and answers a vision chat through the mtmd
handlers with a tiny CLIP/llava-mlp projector.  One thread, n_ctx=512.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from ddtui.catalog.synthetic import llm as synth
from ddtui.catalog.synthetic.gguf import (
    GGUFArrayInfo,
    GGUFError,
    GGUFValueType,
    GGUFWriter,
    read_gguf_header,
    read_gguf_metadata,
)

llama_cpp = pytest.importorskip("llama_cpp")
from llama_cpp import Llama, LogitsProcessorList  # noqa: E402
from llama_cpp import llama_chat_format  # noqa: E402
from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf  # noqa: E402

pytestmark = pytest.mark.slow

SEED = 1
OTHER_SEED = 2
# llama.cpp pads n_ctx up to a multiple of 256; a non-multiple desyncs Llama.input_ids from the real context
N_CTX = 512
PROMPT = [{"role": "user", "content": "Describe a red cat in three words."}]
# one thread for decode *and* batch: Llama's n_threads_batch defaults to all cores
LLAMA_KW = dict(n_ctx=N_CTX, n_threads=1, n_threads_batch=1, verbose=False, seed=1234)

SCHEMA = {
    "type": "object",
    "properties": {
        # maxLength/maxItems bound the output (worst case ~280 tokens, every char a \uXXXX escape),
        # so even a random model always closes the JSON within max_tokens
        "caption": {"type": "string", "maxLength": 16},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2},
        "rating": {"enum": ["safe", "questionable", "explicit"]},
        "nsfw": {"type": "boolean"},
    },
    "required": ["caption", "tags", "rating", "nsfw"],
    "additionalProperties": False,
}


def _png_data_uri(width: int = 24, height: int = 40) -> str:
    # non-square on purpose: the llava preprocessor must pad/resize it to the 32x32 encoder input
    img = Image.new("RGB", (width, height), (200, 30, 30))
    img.paste((20, 40, 220), (0, 0, width // 2, height // 2))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class TokenBudget:
    """Logits processor forcing EOS once ``budget`` tokens were generated.

    0.3.36 skips its ``max_tokens`` check while the output ends in what looks
    like an incomplete UTF-8 sequence, so a model stuck on lead bytes (random
    weights do that) generates until the context is full and then raises.
    """

    def __init__(self, eos_id: int, budget: int) -> None:
        self.eos_id = eos_id
        self.budget = budget
        self.start: int | None = None

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.start is None:
            self.start = len(input_ids)  # first call sees exactly the prompt
        if len(input_ids) - self.start >= self.budget:
            scores[:] = -np.inf
            scores[self.eos_id] = 0.0
        return scores


def _no_eos(eos_id: int):
    def processor(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores[eos_id] = -np.inf
        return scores

    return processor


def _ascii_only(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    # random weights happily emit lone UTF-8 lead/continuation bytes (byte token id == byte value);
    # the invalid text then differs between streamed and non-streamed decoding, so keep it ASCII
    scores[0x80:0x100] = -np.inf
    return scores


def _chat(model: Llama, messages=PROMPT, *, suppress_eos: bool = False, **kw):
    """Greedy chat completion with a hard token budget (needed with 0.3.36) and ASCII-only output.

    Grammar-constrained calls get no processors: the grammar keeps UTF-8 valid
    and the bounded schema keeps the length under ``max_tokens``.
    """
    kw.setdefault("max_tokens", 24)
    kw.setdefault("temperature", 0.0)
    if "logits_processor" not in kw and "grammar" not in kw and "response_format" not in kw:
        eos = model.token_eos()
        # never combine with logit_bias=: 0.3.36 does `processors = processors.extend(...)`, i.e. None
        procs = [_ascii_only] + ([_no_eos(eos)] if suppress_eos else []) + [TokenBudget(eos, kw["max_tokens"])]
        kw["logits_processor"] = LogitsProcessorList(procs)
    return model.create_chat_completion(messages=messages, **kw)


@pytest.fixture(scope="module", autouse=True)
def quiet_mtmd():
    # mtmd/clip log through their own logger and ignore verbose=False; route them through
    # llama-cpp-python's callback, which honours verbose (only ERROR and above are printed)
    from llama_cpp import _logger, mtmd_cpp

    mtmd_cpp.mtmd_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    yield


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("synthetic-llm")
    return {
        "llama": synth.write_tiny_llama(d / "tiny-llama-s1.gguf", SEED),
        "llama_again": synth.write_tiny_llama(d / "tiny-llama-s1-again.gguf", SEED),
        "llama_other": synth.write_tiny_llama(d / "tiny-llama-s2.gguf", OTHER_SEED),
        "mmproj": synth.write_tiny_mmproj(d / "tiny-mmproj-s1.gguf", SEED),
    }


@pytest.fixture(scope="module")
def model(files):
    m = Llama(str(files["llama"]), **LLAMA_KW)
    yield m
    m.close()


# ---------------------------------------------------------------------------
# file format
# ---------------------------------------------------------------------------


def test_tiny_files_are_small_and_deterministic(files):
    digest = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items()}
    assert digest["llama"] == digest["llama_again"]
    assert digest["llama"] != digest["llama_other"]
    for p in files.values():
        assert p.stat().st_size < 4 * 1024 * 1024
        # GGUF data is padded to the alignment, including after the last tensor
        assert p.stat().st_size % 32 == 0
    assert not list(files["llama"].parent.glob(".*.tmp"))  # atomic write left no temp file


def test_metadata_reader_describes_the_tiny_llama(files):
    header = read_gguf_header(files["llama"])
    assert header.version == 3
    assert header.tensor_count == 3 + 9 * 2  # embd, output_norm, output + 9 per layer
    md = read_gguf_metadata(files["llama"])
    assert len(md) == header.kv_count
    assert md["general.architecture"] == "llama"
    assert md["general.alignment"] == 32
    assert md["llama.block_count"] == 2
    assert md["llama.embedding_length"] == 64
    assert md["tokenizer.ggml.model"] == "gpt2"
    tokens = md["tokenizer.ggml.tokens"]
    assert len(tokens) == md["llama.vocab_size"]
    assert len(tokens) == len(set(tokens))  # llama.cpp asserts unique token strings
    assert md["tokenizer.ggml.merges"], "merges must not be empty"
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        assert md["tokenizer.ggml.token_type"][tokens.index(special)] == synth.TOKEN_TYPE_CONTROL
    assert tokens[md["tokenizer.ggml.eos_token_id"]] == "<|im_end|>"
    assert md["tokenizer.chat_template"] == synth.CHATML_TEMPLATE

    # the catalog path: long arrays skipped, everything else intact
    brief = read_gguf_metadata(files["llama"], max_array_len=16)
    assert brief["tokenizer.ggml.tokens"] == GGUFArrayInfo(GGUFValueType.STRING, len(tokens))
    assert brief["llama.context_length"] == md["llama.context_length"]

    mm = read_gguf_metadata(files["mmproj"])
    assert mm["clip.projector_type"] == "mlp"
    assert mm["clip.vision.projection_dim"] == md["llama.embedding_length"]


def test_gguf_writer_round_trips_every_value_type(tmp_path):
    w = GGUFWriter(alignment=64)
    w.add_uint32("t.u32", 2**32 - 1)
    w.add_int32("t.i32", -5)
    w.add_uint64("t.u64", 2**40)
    w.add_float32("t.f32", 0.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ☕")
    w.add_value("t.u8", 7, GGUFValueType.UINT8)
    w.add_value("t.f64", 1e100, GGUFValueType.FLOAT64)
    w.add_string_array("t.strs", ["a", "", "ü"])
    w.add_int32_array("t.ints", [1, -2, 3])
    w.add_float32_array("t.floats", [0.25, -1.5])
    w.add_array("t.bools", [True, False], GGUFValueType.BOOL)
    w.add_array("t.empty", [], GGUFValueType.INT32)
    w.add_tensor("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("b", np.ones(5, dtype=np.float16))
    path = tmp_path / "x.gguf"
    size = w.write(path)
    raw = path.read_bytes()
    assert size == len(raw) and raw == w.to_bytes() and size % 64 == 0
    md = read_gguf_metadata(path)
    assert md == {
        "general.alignment": 64,
        "t.u32": 2**32 - 1,
        "t.i32": -5,
        "t.u64": 2**40,
        "t.f32": 0.5,
        "t.bool": True,
        "t.str": "héllo ☕",
        "t.u8": 7,
        "t.f64": 1e100,
        "t.strs": ["a", "", "ü"],
        "t.ints": [1, -2, 3],
        "t.floats": [0.25, -1.5],
        "t.bools": [True, False],
        "t.empty": [],
    }
    # the last tensor (5 x F16 = 10 bytes) is padded to the alignment as well
    assert raw.endswith(b"\0" * (64 - 10)) and np.frombuffer(raw[-64:-54], np.float16).tolist() == [1.0] * 5

    with pytest.raises(GGUFError):
        w.add_int32("t.i32", 1)  # duplicate key
    with pytest.raises(GGUFError):
        w.add_uint32("t.neg", -1)
    with pytest.raises(GGUFError):
        w.add_int32("t.flag", True)  # bools are not ints here
    with pytest.raises(GGUFError):
        w.add_uint32("general.alignment", 16)  # only via the constructor
    with pytest.raises(GGUFError):
        GGUFWriter(alignment=24)
    (tmp_path / "bad.gguf").write_bytes(b"GGML" + b"\0" * 20)
    with pytest.raises(GGUFError):
        read_gguf_metadata(tmp_path / "bad.gguf")
    (tmp_path / "cut.gguf").write_bytes(raw[:40])
    with pytest.raises(GGUFError):
        read_gguf_metadata(tmp_path / "cut.gguf")


def test_chat_template_accepts_string_and_parts():
    fmt = llama_chat_format.Jinja2ChatFormatter(
        template=synth.CHATML_TEMPLATE, eos_token="<|im_end|>", bos_token="<|endoftext|>"
    )
    as_str = fmt(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}])
    as_parts = fmt(
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi "},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "there"},
                ],
            },
        ]
    )
    expected = "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"
    assert as_str.prompt == expected
    assert as_parts.prompt == expected  # image parts never leak a data: URI into a text-only prompt
    no_gen = llama_chat_format.Jinja2ChatFormatter(
        template=synth.CHATML_TEMPLATE, eos_token="", bos_token="", add_generation_prompt=False
    )
    assert no_gen(messages=[{"role": "assistant", "content": None}]).prompt == "<|im_start|>assistant\n<|im_end|>\n"


# ---------------------------------------------------------------------------
# text model
# ---------------------------------------------------------------------------


def test_model_loads_with_embedded_tokenizer(model):
    tok = synth.build_tokenizer()
    assert model.metadata["general.architecture"] == "llama"
    assert model.n_vocab() == len(tok.tokens)
    assert model.n_embd() == 64
    assert model.n_ctx() == N_CTX
    # a non-stock template is used as-is via Jinja2ChatFormatter, not guessed as "chatml"
    assert model.chat_format == "chat_template.default"
    assert model.token_eos() == tok.im_end_id
    assert model.token_bos() == tok.bos_id
    text = 'the cat: {"a": 1}\n\tcafé ☕ 42'
    ids = model.tokenize(text.encode(), add_bos=False)
    assert len(ids) < len(text.encode())  # merges actually apply
    assert model.detokenize(ids).decode() == text
    # control tokens are parsed only with special=True
    assert model.tokenize(b"<|im_start|>", add_bos=False, special=True) == [tok.im_start_id]
    assert tok.im_start_id not in model.tokenize(b"<|im_start|>", add_bos=False, special=False)


def test_chat_completion_non_streamed(model):
    r = _chat(model)
    choice = r["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    assert 0 < r["usage"]["completion_tokens"]
    # list-of-parts content renders to the same prompt, hence the same greedy answer
    parts = [{"role": "user", "content": [{"type": "text", "text": PROMPT[0]["content"]}]}]
    r2 = _chat(model, parts)
    assert r2["usage"]["prompt_tokens"] == r["usage"]["prompt_tokens"]
    assert r2["choices"][0]["message"]["content"] == choice["message"]["content"]


def test_chat_completion_streamed_matches_non_streamed(model):
    full = _chat(model)["choices"][0]["message"]["content"]
    chunks = list(_chat(model, stream=True))
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert streamed == full


def test_stream_abandoned_midway_leaves_model_usable(model):
    baseline = _chat(model, max_tokens=16)["choices"][0]["message"]["content"]
    # suppress EOS so the stream is guaranteed to be longer than where we break
    stream = _chat(model, stream=True, max_tokens=64, suppress_eos=True)
    seen = 0
    for chunk in stream:
        if chunk["choices"][0]["delta"].get("content"):
            seen += 1
        if seen == 3:
            break
    stream.close()  # what a consumer must do when it stops early (otherwise GC does it later)
    assert seen == 3
    assert _chat(model, max_tokens=16)["choices"][0]["message"]["content"] == baseline


def _force_lead_byte(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    # byte tokens have id == byte value; 0xF5 looks like the start of a 4-byte UTF-8 sequence
    scores[0xF5] = float(np.max(scores)) + 100.0
    return scores


def test_trap_max_tokens_ignored_inside_incomplete_utf8(model):
    # characterises the 0.3.36 bug the TokenBudget guard exists for; if this starts failing
    # after a binding upgrade, the bug is fixed and the guard can go
    with pytest.raises(RuntimeError, match="llama_decode"):
        _chat(model, max_tokens=8, logits_processor=LogitsProcessorList([_force_lead_byte]))
    # the same request with the guard stops cleanly at the budget
    r = _chat(
        model,
        max_tokens=8,
        logits_processor=LogitsProcessorList([_force_lead_byte, TokenBudget(model.token_eos(), 8)]),
    )
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"]["completion_tokens"] == 8
    # and the model is still usable afterwards
    assert _chat(model, max_tokens=4)["usage"]["completion_tokens"] <= 4


def _json_schema_reply(model: Llama, seed: int, **kw) -> str:
    r = _chat(
        model,
        [{"role": "user", "content": "Tag this image as JSON."}],
        # above the schema worst case, far below n_ctx (0.3.36 raises, not stops, at a full context)
        max_tokens=320,
        temperature=0.8,
        seed=seed,
        **kw,
    )
    assert r["choices"][0]["finish_reason"] == "stop"
    return r["choices"][0]["message"]["content"]


def _check_schema(obj) -> None:
    props = SCHEMA["properties"]
    assert set(obj) == set(SCHEMA["required"])
    assert isinstance(obj["caption"], str) and len(obj["caption"]) <= props["caption"]["maxLength"]
    assert isinstance(obj["tags"], list) and len(obj["tags"]) <= props["tags"]["maxItems"]
    assert all(isinstance(t, str) and len(t) <= props["tags"]["items"]["maxLength"] for t in obj["tags"])
    assert obj["rating"] in props["rating"]["enum"]
    assert isinstance(obj["nsfw"], bool)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_json_schema_response_format(model, seed):
    text = _json_schema_reply(model, seed, response_format={"type": "json_object", "schema": SCHEMA})
    # the 0.3.36 schema grammar lets raw control characters into strings: parse leniently
    _check_schema(json.loads(text, strict=False))


def _strict_schema_grammar(schema: dict) -> LlamaGrammar:
    # same grammar as response_format, but string chars exclude U+0000-U+001F and DEL like json.gbnf
    gbnf = json_schema_to_gbnf(json.dumps(schema))
    tightened, n = re.subn(r'(?m)^char ::= \[\^"\\\\\]', r'char ::= [^"\\\\\\x7F\\x00-\\x1F]', gbnf)
    assert n == 1, gbnf
    return LlamaGrammar.from_string(tightened, verbose=False)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tightened_schema_grammar_gives_strict_json(model, seed):
    text = _json_schema_reply(model, seed, grammar=_strict_schema_grammar(SCHEMA))
    _check_schema(json.loads(text))  # strict parse


def test_different_seeds_give_different_outputs(model, files):
    other = Llama(str(files["llama_other"]), **LLAMA_KW)
    try:
        ids = model.tokenize(b"the red cat", add_bos=False)
        logits = []
        for m in (model, other):
            m.reset()
            m.eval(ids)
            # Llama.scores is only filled with logits_all=True; read the last row from the context
            row = llama_cpp.llama_get_logits_ith(m.ctx, -1)
            logits.append(np.ctypeslib.as_array(row, shape=(m.n_vocab(),)).copy())
        assert not np.allclose(logits[0], logits[1])
        answers = [_chat(m, max_tokens=16)["choices"][0]["message"]["content"] for m in (model, other)]
        assert answers[0] != answers[1]
    finally:
        other.close()


# ---------------------------------------------------------------------------
# vision
# ---------------------------------------------------------------------------

N_IMAGE_TOKENS = (synth.TinyMmprojConfig.image_size // synth.TinyMmprojConfig.patch_size) ** 2


def _vision_messages(uri: str) -> list:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": uri}},
            ],
        }
    ]


def test_vision_chat_with_mtmd_handler(files, model):
    handler = llama_chat_format.MTMDChatHandler(clip_model_path=str(files["mmproj"]), verbose=False, use_gpu=False)
    vlm = Llama(str(files["llama"]), chat_handler=handler, **LLAMA_KW)
    try:
        r = _chat(vlm, _vision_messages(_png_data_uri()), max_tokens=16)
        assert isinstance(r["choices"][0]["message"]["content"], str)
        assert r["choices"][0]["finish_reason"] in ("stop", "length")
        # the handler renders the GGUF's own template; the image becomes exactly n_patches embeddings
        text_only = _chat(model, [{"role": "user", "content": "What is in this picture?"}], max_tokens=1)
        assert r["usage"]["prompt_tokens"] == text_only["usage"]["prompt_tokens"] + N_IMAGE_TOKENS
        # streaming works through the same handler
        chunks = list(_chat(vlm, _vision_messages(_png_data_uri(8, 8)), max_tokens=8, stream=True))
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    finally:
        vlm.close()


def test_vision_chat_with_llava15_handler(files):
    handler = llama_chat_format.Llava15ChatHandler(clip_model_path=str(files["mmproj"]), verbose=False)
    vlm = Llama(str(files["llama"]), chat_handler=handler, **LLAMA_KW)
    try:
        r = _chat(vlm, _vision_messages(_png_data_uri()), max_tokens=16)
        assert isinstance(r["choices"][0]["message"]["content"], str)
        assert r["usage"]["prompt_tokens"] > N_IMAGE_TOKENS
    finally:
        vlm.close()
