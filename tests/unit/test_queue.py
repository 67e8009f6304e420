"""The persistent job queue: ordering, claiming, retries with backoff, recovery after a crash, pause."""

from datetime import timedelta

import pytest

from ddtui.core.queue import JobQueue, QueueError
from ddtui.db.entities import utcnow
from ddtui.db.schema import open_database


@pytest.fixture
def queue(tmp_path):
    db = open_database(tmp_path / "history.db")
    yield JobQueue(db, max_attempts=3)
    db.disconnect()


def test_priority_then_age(queue):
    a = queue.submit("generate", {"n": "a"})
    b = queue.submit("generate", {"n": "b"}, priority=5)
    c = queue.submit("generate", {"n": "c"})
    order = [queue.claim(["generate"], "w").id for _ in range(3)]
    assert order == [b.id, a.id, c.id]
    assert queue.claim(["generate"], "w") is None


def test_claim_only_matching_types(queue):
    queue.submit("tag", {})
    assert queue.claim(["generate", "upscale"], "sd") is None
    job = queue.claim(["tag"], "llm")
    assert job.type == "tag" and job.state == "running" and job.worker == "llm" and job.attempts == 1


def test_unknown_type_is_refused(queue):
    with pytest.raises(QueueError, match="unknown job type"):
        queue.submit("paint", {})


def test_retry_with_backoff_then_fail(queue):
    job = queue.submit("tag", {}, max_attempts=2)
    queue.claim(["tag"], "w")
    failed = queue.fail(job.id, "llm: bad answer", backoff_s=60)
    assert failed.state == "queued" and failed.error == "llm: bad answer"
    assert queue.claim(["tag"], "w") is None  # backing off
    assert queue.claim(["tag"], "w", now=utcnow() + timedelta(seconds=61)).id == job.id
    final = queue.fail(job.id, "llm: bad answer again", backoff_s=60)
    assert final.state == "failed" and final.attempts == 2 and final.finished is not None


def test_permanent_failure_is_not_retried(queue):
    job = queue.submit("generate", {})
    queue.claim(["generate"], "w")
    assert queue.fail(job.id, "bad_params: width", retry=False).state == "failed"


def test_recover_interrupted_requeues_then_gives_up(queue):
    queue.submit("generate", {}, max_attempts=2)
    queue.claim(["generate"], "w")
    (rec,) = queue.recover_interrupted()  # the service died while it ran
    assert rec.state == "queued" and rec.attempts == 1 and "interrupted" in rec.error
    queue.claim(["generate"], "w")
    (rec,) = queue.recover_interrupted()
    assert rec.state == "failed" and "gave up after 2 attempts" in rec.error
    assert queue.recover_interrupted() == []


def test_cancel_queued_and_running(queue):
    a = queue.submit("generate", {})
    b = queue.submit("generate", {})
    queue.claim(["generate"], "w")
    assert queue.cancel(b.id).state == "cancelled"
    assert queue.cancel(a.id).state == "cancelled"
    # A worker finishing after a cancel does not resurrect the job.
    assert queue.complete(a.id, {"generation_ids": [1]}).state == "cancelled"
    with pytest.raises(QueueError, match="already cancelled"):
        queue.cancel(a.id)


def test_retry_and_priority(queue):
    job = queue.submit("generate", {})
    queue.claim(["generate"], "w")
    queue.fail(job.id, "boom", retry=False)
    again = queue.retry(job.id)
    assert again.state == "queued" and again.attempts == 0 and again.error == ""
    with pytest.raises(QueueError, match="only failed or cancelled"):
        queue.retry(job.id)
    assert queue.set_priority(job.id, 9).priority == 9


def test_group_cancel(queue):
    jobs = [queue.submit("generate", {}, group="grid-1") for _ in range(3)]
    other = queue.submit("generate", {}, group="other")
    queue.claim(["generate"], "w")
    cancelled = queue.cancel_group("grid-1")
    assert sorted(j.id for j in cancelled) == sorted(j.id for j in jobs)
    assert queue.get(other.id).state == "queued"
    assert queue.count(("queued", "running")) == 1


def test_pause_stops_claims(queue):
    queue.submit("generate", {})
    queue.set_paused(True)
    assert queue.paused() and queue.claim(["generate"], "w") is None
    queue.set_paused(False)
    assert queue.claim(["generate"], "w") is not None


def test_list_orders_running_first(queue):
    a = queue.submit("generate", {})
    b = queue.submit("generate", {}, priority=3)
    c = queue.submit("tag", {})
    queue.claim(["tag"], "w")
    assert [j.id for j in queue.list()] == [c.id, b.id, a.id]
    with pytest.raises(QueueError, match="unknown state"):
        queue.list(["waiting"])
