"""Integration tests: a headless SD worker on 127.0.0.1 TCP with CURVE, as ``ddtui worker sd --listen tcp://``.

Owns the remote path of ``workers/loop.py`` and ``WorkerClient``: a client key in the allow-list
completes the session-key handshake and runs a real generation; an unknown client key and a client
pinning the wrong server key get nothing at all; after the handshake every message must still carry
the HMAC of that client's key (another key is rejected and counted), and a CURVE peer that skipped the
handshake is refused. Keys come from the protocol's ``init_keys`` in temporary folders.
"""

from __future__ import annotations

import asyncio
import io
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
from PIL import Image

from ddtui.catalog import demo
from ddtui.core.worker_client import WorkerClient
from ddtui.protocol import Session, configure_curve_client, init_keys, serialize

pytest.importorskip("stable_diffusion_cpp")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REFUSED_TIMEOUT = 1.0  # a refused client waits this long to be sure nothing comes back


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("remote-models")
    demo.write_demo_set(root, seed=0)
    return root


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("keys") / "keys")


@pytest.fixture(scope="module")
def remote(models, keys, tmp_path_factory):
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    log = tmp_path_factory.mktemp("remote-log") / "worker.log"
    # exactly what `ddtui worker sd --listen tcp://...` runs: no key pipe, CURVE keys and an allow-list
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers", "sd", "--listen", endpoint, "--curve-keys", str(keys.keys_dir),
         "--model-dir", str(models), "--threads", "1", "--name", "remote", "--log-file", str(log)],
        cwd=ROOT, stdin=subprocess.DEVNULL,
    )
    yield endpoint
    proc.terminate()
    assert proc.wait(10) == 0, log.read_text()[-2000:]


def _good(keys) -> tuple:
    return (keys.client_secret, keys.client_public, keys.server_public)


async def _connected(endpoint: str, curve: tuple) -> WorkerClient:
    client = WorkerClient(endpoint, curve=curve, name="remote-test")
    await client.connect()
    return client


async def _wait_hello(client: WorkerClient, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.hello(timeout=1.0)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


async def test_allowed_client_end_to_end(remote, keys):
    client = await _connected(remote, _good(keys))
    try:
        hello = (await _wait_hello(client)).content
        assert hello["kind"] == "sd" and hello["name"] == "remote"
        job = await client.start_job("generate", {"job_id": "remote-1", "params": {
            "model": demo.IMAGE_MODEL, "prompt": "a red fox", "width": 64, "height": 64, "steps": 2,
            "cfg": 1.0, "sampler": "euler", "seed": 3}})
        events = await job.collect(60)
        assert events[-1].msg_type == "result" and events[-1].content["status"] == "done", events[-1].content
        image = next(e for e in events if e.msg_type == "image")
        assert Image.open(io.BytesIO(image.buffers[0])).size == (64, 64)
        await client.heartbeat()  # answered, with nothing left queued (how fast: bench/overhead.py)
        assert client.last_heartbeat.msg_type == "heartbeat" and client.last_heartbeat.metadata["queue"] == 0
    finally:
        client.close()


async def test_unknown_client_key_gets_nothing(remote, keys):
    public, secret = zmq.curve_keypair()  # a valid key pair that is not in allowed_clients/
    client = await _connected(remote, (secret, public, keys.server_public))
    try:
        with pytest.raises(TimeoutError):
            await client.hello(timeout=REFUSED_TIMEOUT)
    finally:
        client.close()


async def test_wrong_server_key_gets_nothing(remote, keys):
    other_server, _ = zmq.curve_keypair()  # the client pins a server key the worker does not hold
    client = await _connected(remote, (keys.client_secret, keys.client_public, other_server))
    try:
        with pytest.raises(TimeoutError):
            await client.hello(timeout=REFUSED_TIMEOUT)
    finally:
        client.close()


async def test_hmac_still_enforced_after_handshake(remote, keys):
    client = await _connected(remote, _good(keys))
    skipper = None
    try:
        before = (await _wait_hello(client)).content["rejections"]
        # same CURVE connection, same routing identity, but signed with a key the worker never got
        forged = serialize(Session(Session.new_key()).msg("hello_request", {}), key=Session.new_key())
        await client._sock.send_multipart(forged)
        # an allowed CURVE peer that never sent its session key is refused as well
        skipper = zmq.Context.instance().socket(zmq.DEALER)
        skipper.linger = 0
        configure_curve_client(skipper, *_good(keys))
        skipper.connect(remote)
        # even a correctly keyed message does not count from a connection that did not hand the key over
        borrowed = Session(client.key)
        skipper.send_multipart(borrowed.serialize(borrowed.msg("hello_request", {})))
        assert not skipper.poll(int(REFUSED_TIMEOUT * 1000))
        # the skipper's message comes over its own connection: wait until the worker has counted it
        deadline = time.monotonic() + 60
        while True:
            after = (await client.hello()).content["rejections"]
            if after["no_session"] > before.get("no_session", 0) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert after["bad_signature"] - before["bad_signature"] == 1
        assert after["no_session"] - before.get("no_session", 0) == 1
    finally:
        if skipper is not None:
            skipper.close(0)
        client.close()

