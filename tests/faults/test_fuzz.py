"""Protocol fuzzing against the real sockets of a running service and its workers.

Thousands of random and mutated frames (truncated, oversized, wrong types, unsigned, wrongly signed,
tampered, replayed, unknown types, wrong CURVE keys): nothing is accepted that was not properly signed, the
rejection counters match what was sent, and everything keeps answering.
"""

from __future__ import annotations

import json
import random
import socket as pysocket
import subprocess
import sys
import time
from collections import Counter

import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from ddtui.protocol import Session
from ddtui.protocol.wire import DELIM
from tests.conftest import ROOT, Service, ddtui, make_home
from tests.faults.conftest import record
from tests.integration.test_core import jobs

MAX_MB = 1


def valid_frames(session: Session, msg_type: str, content: dict, key_session: Session | None = None) -> list[bytes]:
    """A message signed by `key_session` (default: `session`), as the frames a DEALER sends."""
    s = key_session or session
    return s.serialize(s.msg(msg_type, content))


def categories(good: Session, rng: random.Random) -> list[tuple[str, list[bytes]]]:
    """(expected rejection reason, frames) for every mutation kind."""
    wrong = Session(Session.new_key())
    out: list[tuple[str, list[bytes]]] = []
    for i in range(300):
        frames = valid_frames(good, "core_ping", {"n": i})
        out.append(("unsigned", frames[:1] + [b""] + frames[2:]))
        out.append(("bad_signature", valid_frames(good, "core_ping", {"n": i}, wrong)))
        tampered = list(frames)
        tampered[5] = json.dumps({"n": i + 1}).encode()  # content changed after signing
        out.append(("bad_signature", tampered))
        out.append(("malformed", frames[: rng.randint(1, 4)]))  # truncated
        out.append(("malformed", [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))]))  # no delimiter
        # Wrong types, properly signed: the content is a list, or the header lacks fields.
        bad = good.msg("core_ping", {})
        bad["content"] = [1, 2, 3]
        out.append(("malformed", good.serialize(bad)))
        # A type the core does not take (a worker request) and one nobody knows, both properly signed.
        out.append(("unknown_type", valid_frames(good, "generate", {"job_id": "1", "params": {}})))
        hdr = good.msg("core_ping", {})
        hdr["header"]["msg_type"] = "launch_missiles"
        hdr["msg_type"] = "launch_missiles"
        out.append(("unknown_type", good.serialize(hdr)))
    for _ in range(5):
        big = valid_frames(good, "core_ping", {})
        out.append(("oversized", big + [b"\0" * (MAX_MB * 1024 * 1024 + 10)]))
    rng.shuffle(out)
    return out


def rejections(svc: Service) -> Counter:
    return Counter(svc.status()["rejections"])


def test_fuzz_core_socket(tmp_path, demo_models):
    home = make_home(tmp_path / "home", demo_models, workers={"max_message_mb": MAX_MB})
    svc = Service(home).start()
    ctx = zmq.Context()
    try:
        key = (home / "run" / "client.key").read_bytes()
        good = Session(key)
        rng = random.Random(3)
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.connect(f"ipc://{home / 'run' / 'core.sock'}")
        sent = Counter()
        for reason, frames in categories(good, rng):
            rogue.send_multipart(frames)
            sent[reason] += 1
        # Replays: one valid ping is answered, its copies are not.
        ping = valid_frames(good, "core_ping", {"replay": True})
        rogue.send_multipart(ping)
        for _ in range(200):
            rogue.send_multipart(ping)
        sent["replayed"] += 200
        answered = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if rogue.poll(500):
                rogue.recv_multipart()
                answered += 1
            elif answered:
                break
        assert answered == 1, f"{answered} replies: only the one properly signed ping may be answered"
        assert rejections(svc) == sent, (rejections(svc), sent)
        assert jobs(home) == {}  # nothing was queued
        assert ddtui(home, "generate", "still serving", "--seed", "1").returncode == 0
        record("core socket fuzzed", frames_sent=sum(sent.values()) + 1, rejected=sum(sent.values()),
               accepted=answered)
    finally:
        ctx.destroy(0)
        svc.stop()


def test_fuzz_worker_sockets(tmp_path, demo_models):
    """Random frames from hypothesis at each local worker: every one refused and counted, both keep working."""
    home = make_home(tmp_path / "home", demo_models)
    svc = Service(home).start()
    ctx = zmq.Context()
    try:
        before = {w["name"]: sum(w.get("rejections", {}).values()) for w in svc.status()["workers"]}
        total = 0
        for name in ("sd-local", "llm-local"):
            rogue = ctx.socket(zmq.DEALER)
            rogue.setsockopt(zmq.LINGER, 0)
            rogue.connect(f"ipc://{home / 'run' / f'{name}.sock'}")
            sent = Counter()

            @settings(max_examples=1000, deadline=None, database=None)
            @given(frames=st.lists(st.binary(max_size=120), min_size=1, max_size=9),
                   delimit=st.booleans())
            def barrage(frames: list[bytes], delimit: bool) -> None:
                rogue.send_multipart([DELIM, *frames] if delimit else frames)
                sent["frames"] += 1

            barrage()
            assert not rogue.poll(1000), f"{name} answered a rogue frame"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                counted = {w["name"]: sum(w.get("rejections", {}).values()) for w in svc.status()["workers"]}
                if counted[name] - before[name] >= sent["frames"]:
                    break
                time.sleep(0.2)
            assert counted[name] - before[name] == sent["frames"]
            total += sent["frames"]
            rogue.close(0)
        assert ddtui(home, "generate", "still serving", "--seed", "2").returncode == 0
        record("worker sockets fuzzed (hypothesis)", frames_sent=total, rejected=total, accepted=0)
    finally:
        ctx.destroy(0)
        svc.stop()


def test_wrong_curve_keys_get_nothing(tmp_path, demo_models):
    box = make_home(tmp_path / "box", demo_models)
    assert ddtui(box, "keys", "init").returncode == 0
    with pysocket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = subprocess.Popen([sys.executable, "-m", "ddtui", "--home", str(box), "worker", "sd",
                               "--listen", f"tcp://127.0.0.1:{port}", "--threads", "1"], cwd=ROOT)
    ctx = zmq.Context()
    try:
        from ddtui.protocol.keys import load_public

        server_public = load_public(box / "keys" / "server.key")
        tries = 50
        for i in range(tries):
            public, secret = zmq.curve_keypair()  # a client key the worker never allowed
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_secretkey, sock.curve_publickey = secret, public
            sock.curve_serverkey = server_public if i % 2 == 0 else zmq.curve_keypair()[0]  # or a wrong pin
            sock.connect(f"tcp://127.0.0.1:{port}")
            sock.send_multipart([b"ddtui-session-key/1", Session.new_key()], zmq.NOBLOCK)
            assert not sock.poll(100)
            sock.close(0)
        assert worker.poll() is None, "the worker died"
        record("wrong CURVE keys", connections=tries, accepted=0)
    finally:
        ctx.destroy(0)
        worker.terminate()
        worker.wait(20)
