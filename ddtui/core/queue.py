"""The persistent job queue: the `job` table is the queue, so a crash or a restart loses no job.

States: queued -> running -> done | failed | cancelled. Higher priority runs first, then older jobs. A failed
attempt may be retried after a backoff (`not_before`); jobs found `running` when the service starts were
interrupted and go back to `queued` with their attempt count, or to `failed` once attempts are used up.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any, Iterable

from pony.orm import Database, db_session, select

from ..db.entities import ACTIVE_STATES, FINAL_STATES, JOB_TYPES, utcnow
from ..db.queries import PARENT_KEY, job_record, list_jobs
from ..db.records import JobRecord

IMAGE_JOB_TYPES = ("generate", "upscale")
LLM_JOB_TYPES = ("tag", "chat")


class QueueError(Exception):
    """A request the queue cannot honour (unknown job, wrong state, bad type)."""


JobInfo = JobRecord  # the name the core has always used


class JobQueue:
    def __init__(self, db: Database, max_attempts: int = 3) -> None:
        self.db = db
        self.max_attempts = max_attempts

    # -- submitting and reading

    def submit(self, type: str, payload: dict[str, Any], priority: int = 0, group: str = "",
               generation_id: int | None = None, max_attempts: int | None = None,
               parent: dict[str, Any] | None = None) -> JobInfo:
        """Queue a job; `parent` is the header of the request that asked for it (its events carry it)."""
        if type not in JOB_TYPES:
            raise QueueError(f"unknown job type {type!r} (known: {', '.join(JOB_TYPES)})")
        stored = {**payload, PARENT_KEY: dict(parent)} if parent else payload
        with db_session:
            job = self.db.Job(type=type, payload=stored, priority=priority, group=group,
                              generation=self.db.Generation[generation_id] if generation_id else None,
                              max_attempts=max_attempts or self.max_attempts)
            job.flush()
            return job_record(job)

    def get(self, job_id: int) -> JobInfo:
        with db_session:
            job = self.db.Job.get(id=job_id)
            if job is None:
                raise QueueError(f"no job {job_id}")
            return job_record(job)

    def list(self, states: Iterable[str] | None = None, limit: int = 200, group: str = "") -> builtins.list[JobInfo]:
        try:
            with db_session:
                return list_jobs(self.db, states, limit, group)
        except ValueError as exc:
            raise QueueError(str(exc)) from None

    def count(self, states: Iterable[str] = ACTIVE_STATES, types: Iterable[str] | None = None) -> int:
        states, types = tuple(states), tuple(types or JOB_TYPES)
        with db_session:
            return int(select(j for j in self.db.Job if j.state in states and j.type in types).count())

    # -- dispatching

    def claim(self, types: Iterable[str], worker: str, now: datetime | None = None) -> JobInfo | None:
        """Take the next runnable job of one of `types` for `worker`, or None (also while paused)."""
        if self.paused():
            return None
        types = tuple(types)
        now = now or utcnow()
        with db_session:
            job = (
                select(j for j in self.db.Job
                       if j.state == "queued" and j.type in types and (j.not_before is None or j.not_before <= now))
                .order_by(lambda j: (-j.priority, j.id))
                .first()
            )
            if job is None:
                return None
            job.state, job.worker, job.started = "running", worker, now
            job.attempts += 1
            job.progress, job.error = 0.0, ""
            return job_record(job)

    def set_progress(self, job_id: int, fraction: float) -> None:
        with db_session:
            job = self.db.Job.get(id=job_id)
            if job is not None and job.state == "running":
                job.progress = max(0.0, min(1.0, fraction))

    def complete(self, job_id: int, result: dict[str, Any] | None = None) -> JobInfo:
        with db_session:
            job = self._job(job_id)
            if job.state == "cancelled":  # cancelled while its last image was being made: keep the decision
                job.result = result or {}
                return job_record(job)
            job.state, job.progress, job.finished = "done", 1.0, utcnow()
            job.result = result or {}
            return job_record(job)

    def fail(self, job_id: int, error: str, retry: bool = True, backoff_s: float = 0.0) -> JobInfo:
        """Record a failed attempt; re-queue it after `backoff_s` while attempts remain and `retry` is set."""
        with db_session:
            job = self._job(job_id)
            job.error = error
            if job.state == "cancelled":
                return job_record(job)
            if retry and job.attempts < job.max_attempts:
                job.state, job.worker, job.started = "queued", "", None
                job.not_before = utcnow() + timedelta(seconds=backoff_s) if backoff_s > 0 else None
            else:
                job.state, job.finished = "failed", utcnow()
            return job_record(job)

    def requeue(self, job_id: int, reason: str) -> JobInfo:
        """Put a running job back without counting the attempt (its worker went away, e.g. on cancel)."""
        with db_session:
            job = self._job(job_id)
            if job.state == "running":
                job.state, job.worker, job.started, job.error = "queued", "", None, reason
                job.attempts = max(0, job.attempts - 1)
            return job_record(job)

    def release_untracked(self, tracked: set[int], workers: set[str], older_than_s: float = 10.0) -> builtins.list[JobInfo]:
        """Jobs marked running by one of `workers` that nothing tracks any more (a write that failed while
        the database was locked, say) go back to the queue with the attempt counted."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        released = []
        with db_session:
            for job in select(j for j in self.db.Job if j.state == "running" and j.worker in workers
                              and j.started is not None and j.started < cutoff):
                if job.id in tracked:
                    continue
                if job.attempts >= job.max_attempts:
                    job.state, job.finished = "failed", utcnow()
                    job.error = f"lost track of the job after {job.attempts} attempt(s)"
                else:
                    job.state, job.worker, job.started = "queued", "", None
                    job.error = "lost track of the job; re-queued"
                released.append(job_record(job))
        return released

    def recover_interrupted(self) -> builtins.list[JobInfo]:
        """At start: jobs left running by a previous run are re-queued, or failed once out of attempts."""
        changed = []
        with db_session:
            for job in select(j for j in self.db.Job if j.state == "running"):
                if job.attempts >= job.max_attempts:
                    job.state, job.finished = "failed", utcnow()
                    job.error = (f"interrupted {job.attempts} time(s) while running (service or worker stopped); "
                                 f"gave up after {job.max_attempts} attempts")
                else:
                    job.state, job.worker, job.started = "queued", "", None
                    job.error = f"interrupted during attempt {job.attempts}; re-queued"
                changed.append(job_record(job))
        return changed

    # -- user actions

    def cancel(self, job_id: int) -> JobInfo:
        """Cancel a job; a queued one is dropped at once, a running one is marked and its worker told."""
        with db_session:
            job = self._job(job_id)
            if job.state in FINAL_STATES:
                raise QueueError(f"job {job_id} is already {job.state}")
            job.state, job.finished = "cancelled", utcnow()
            return job_record(job)

    def cancel_group(self, group: str) -> builtins.list[JobInfo]:
        with db_session:
            jobs = select(j for j in self.db.Job if j.group == group and j.state in ACTIVE_STATES)[:]
            now = utcnow()
            for job in jobs:
                job.state, job.finished = "cancelled", now
            return [job_record(j) for j in jobs]

    def retry(self, job_id: int) -> JobInfo:
        with db_session:
            job = self._job(job_id)
            if job.state not in ("failed", "cancelled"):
                raise QueueError(f"job {job_id} is {job.state}; only failed or cancelled jobs can be retried")
            job.state, job.attempts, job.error, job.worker = "queued", 0, "", ""
            job.progress, job.started, job.finished, job.not_before = 0.0, None, None, None
            return job_record(job)

    def set_priority(self, job_id: int, priority: int) -> JobInfo:
        with db_session:
            job = self._job(job_id)
            job.priority = priority
            return job_record(job)

    def paused(self) -> bool:
        with db_session:
            row = self.db.Setting.get(key="queue.paused")
            return bool(row and row.value)

    def set_paused(self, paused: bool) -> None:
        with db_session:
            row = self.db.Setting.get(key="queue.paused")
            if row is None:
                self.db.Setting(key="queue.paused", value=paused)
            else:
                row.value = paused

    def _job(self, job_id: int) -> Any:
        job = self.db.Job.get(id=job_id)
        if job is None:
            raise QueueError(f"no job {job_id}")
        return job
