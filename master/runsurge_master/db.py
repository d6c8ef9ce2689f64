"""Engine and sessions. SQLite gets WAL and a busy timeout so HTTP threads and the master's writer share it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back everything on any error."""
        s = self._factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    async def call(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in a transaction of its own on a thread: the event loop never waits on the
        database (worker reports go through group_commit.py instead: batched, one writer)."""
        return await asyncio.to_thread(self._in_session, work)

    def _in_session(self, work: Callable[[Session], T]) -> T:
        with self.session() as s:
            return work(s)

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from runsurge_master.migrate import upgrade

        upgrade(self.engine)
