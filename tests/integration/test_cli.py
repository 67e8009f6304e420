"""Every CLI subcommand from a shell's point of view: output, JSON, exit codes, and the service lifecycle."""

from __future__ import annotations

import json

from tests.conftest import ddtui
from tests.integration.test_core import history, jobs, lines, wait_for


def test_history_edits(service):
    home = service.home
    ids = [e["generation_id"] for e in lines(ddtui(home, "generate", "a quiet garden", "-n", "2", "--json").stdout)
           if e["event"] == "image"]
    a, b = ids
    assert ddtui(home, "history", "rate", str(a), "4").returncode == 0
    assert ddtui(home, "history", "favorite", str(a)).returncode == 0
    r = ddtui(home, "history", "tag", str(a), "+Garden", "+quiet place", "--json")
    assert r.returncode == 0 and {"garden", "quiet place"} <= set(json.loads(r.stdout)["tags"])
    found = [json.loads(x)["id"] for x in
             ddtui(home, "history", "search", "--min-rating", "4", "--favorite", "--tag", "garden", "--json")
             .stdout.splitlines()]
    assert found == [a]
    shown = json.loads(ddtui(home, "history", "show", str(a), "--json").stdout)
    assert shown["rating"] == 4 and shown["favorite"] is True
    assert {t["name"] for t in shown["tags"] if t["source"] == "user"} == {"garden", "quiet place"}
    path = shown["file"]
    r = ddtui(home, "history", "delete", str(a), "--files", "--yes", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"deleted": [a], "files_removed": True}
    assert [h[0] for h in history(home)] == [b]
    import os

    assert not os.path.exists(path)
    assert ddtui(home, "history", "delete", str(a), "--yes").returncode == 1  # already gone


def test_queue_commands(service):
    home = service.home
    assert json.loads(ddtui(home, "queue", "pause", "--json").stdout) == {"paused": True}
    job = json.loads(ddtui(home, "generate", "waits", "--no-wait", "--json").stdout)["job_id"]
    listed = json.loads(ddtui(home, "queue", "list", "--json").stdout)
    assert listed["paused"] is True and [j["state"] for j in listed["jobs"] if j["id"] == job] == ["queued"]
    r = ddtui(home, "queue", "priority", str(job), "7", "--json")
    assert json.loads(r.stdout)["job"]["priority"] == 7
    assert json.loads(ddtui(home, "queue", "cancel", str(job), "--json").stdout)["job"]["state"] == "cancelled"
    assert json.loads(ddtui(home, "queue", "retry", str(job), "--json").stdout)["job"]["state"] == "queued"
    assert ddtui(home, "queue", "resume").stdout.strip() == "queue resumed"
    wait_for(lambda: jobs(home)[job][1] == "done", timeout=60)
    text = ddtui(home, "queue", "list", "--all").stdout
    assert any(line.split()[:3] == [str(job), "generate", "done"] for line in text.splitlines())
    assert ddtui(home, "queue", "retry", str(job)).returncode == 2  # a finished job cannot be retried


def test_service_lifecycle(demo_home):
    assert ddtui(demo_home, "serve", "--status").returncode == 3
    r = ddtui(demo_home, "serve", "--detach")
    assert r.returncode == 0 and "runs in the background" in r.stdout
    try:
        st = json.loads(ddtui(demo_home, "serve", "--status", "--json").stdout)
        assert st["service_running"] and {w["kind"] for w in st["workers"]} == {"sd", "llm"}
        assert "already runs" in ddtui(demo_home, "serve", "--detach").stdout
        assert (demo_home / "run" / "client.key").stat().st_mode & 0o077 == 0  # owner-only
    finally:
        assert "stopped" in ddtui(demo_home, "serve", "--stop").stdout
    assert ddtui(demo_home, "serve", "--status").returncode == 3
    assert not (demo_home / "run" / "client.key").exists()
    # A command that needs the service starts it.
    try:
        assert ddtui(demo_home, "generate", "starts the service", "--seed", "1").returncode == 0
    finally:
        ddtui(demo_home, "serve", "--stop")


def test_config_models_and_keys(demo_home):
    assert ddtui(demo_home, "config", "path").stdout.strip() == str(demo_home / "config.json")
    assert json.loads(ddtui(demo_home, "config", "show", "--json").stdout)["sd"]["threads"] == 1
    assert ddtui(demo_home, "config", "check").returncode == 0
    listed = ddtui(demo_home, "models", "list").stdout
    assert "stable-diffusion/demo-flux2-klein.safetensors" in listed and "PROBLEM" not in listed
    assert "(none: run ddtui keys init)" in ddtui(demo_home, "keys", "show").stdout
    assert ddtui(demo_home, "keys", "init").returncode == 0
    shown = ddtui(demo_home, "keys", "show").stdout
    assert "allowed clients: client.key" in shown and "(none" not in shown
    assert (demo_home / "keys" / "server.key_secret").stat().st_mode & 0o077 == 0


def test_empty_home_explains_where_models_go(tmp_path):
    r = ddtui(tmp_path / "fresh", "models", "list")
    assert r.returncode == 0
    assert "No models in" in r.stdout and "ddtui models demo" in r.stdout
    r = ddtui(tmp_path / "fresh", "generate", "a cat")
    assert r.returncode == 2 and "no model given and no default model set" in r.stderr
    ddtui(tmp_path / "fresh", "serve", "--stop")
