"""Group commit of worker reports: the reports (TaskStarted, TaskComplete) that arrive while one
transaction is being written are handled together in the NEXT single transaction, on a thread
(never on the event loop), and each caller hears back only after that commit — what a worker was
acknowledged is on disk, whenever the master dies.

A report's work is a function of the session. It may refuse (raise RefusedError) only before it changed
anything; its caller alone hears of it. Any other error rolls the whole batch back and each report
is done again in a transaction of its own, so one bad report never costs the others theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from runsurge_master.db import Database

log = logging.getLogger("runsurge.group_commit")

# Reports per transaction: bounds how long the write lock is held (others wait on it meanwhile).
MAX_BATCH = 64

Work = Callable[[Session], Any]


class RefusedError(Exception):
    """A report turned down before it changed anything (only its own caller hears of it)."""


class GroupCommit:
    def __init__(self, db: Database, max_batch: int = MAX_BATCH):
        self.db, self.max_batch = db, max_batch
        self._pending: list[tuple[Work, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def run(self, work: Work, urgent: bool = False) -> Any:
        """`work(session)`'s result once committed (or its RefusedError / error raised here). `urgent`
        work goes into the next transaction, ahead of what waits (heartbeats: a late one makes a
        worker look gone)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if urgent:
            self._pending.insert(0, (work, future))
        else:
            self._pending.append((work, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                try:
                    outcomes = await asyncio.to_thread(self._commit, [work for work, _ in batch])
                except Exception as exc:  # the commit failed: nothing of the batch holds
                    log.exception("a batch of %d reports could not be written", len(batch))
                    outcomes = [(False, exc)] * len(batch)
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if not future.done():  # its caller may have gone (cancelled call)
                        future.set_result(value) if ok else future.set_exception(value)
        finally:
            self._drainer = None

    def _commit(self, works: list[Work]) -> list[tuple[bool, Any]]:
        try:
            with self.db.session() as s:
                return [_one(s, work) for work in works]
        except Exception:
            if len(works) == 1:
                raise
            log.warning("a batch of %d reports failed: each is done again on its own", len(works))
            return [self._alone(work) for work in works]

    def _alone(self, work: Work) -> tuple[bool, Any]:
        try:
            return self._commit([work])[0]
        except Exception as exc:  # noqa: BLE001 - its own error, reported to its own caller
            return False, exc


def _one(s: Session, work: Work) -> tuple[bool, Any]:
    try:
        return True, work(s)
    except RefusedError as exc:
        return False, exc
