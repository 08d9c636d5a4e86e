"""Engines, sessions and schema migrations.

SQLite: WAL, synchronous=NORMAL, foreign keys on, a busy timeout; reads begin a
deferred transaction, writes go through a separate engine that begins
``BEGIN IMMEDIATE`` so two writers queue instead of failing on upgrade.

PostgreSQL (``postgresql+psycopg://``): reads in REPEATABLE READ (one snapshot each);
writes, READ COMMITTED, go through a separate engine whose transactions first take one
advisory lock, so writers queue there too (see ``_postgres_engine``).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from zonekeeper.storage import DATABASE_STAMP, SCHEMA_HEAD

MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")


def shown_url(url: str) -> str:
    """A database URL fit for messages and ``config show``: a PostgreSQL password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


class SchemaError(RuntimeError):
    """The database schema is older (needs --migrate) or newer than this program."""


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        # A connection opened while the file was read-only stays read-only, and one that
        # hit an I/O error may be unusable: drop the pool's connections, so that the next
        # transaction opens the file again and writes work once the file is writable (or
        # the disk is back) without a restart. The error itself still reaches the caller.
        if _REOPEN_ON.search(str(context.original_exception).lower()):
            context.is_disconnect = True

    return engine


# SQLite errors after which its connections are opened again (see ``_sqlite_engine``).
_REOPEN_ON = re.compile(r"readonly database|disk i/o error")


# The key of the advisory lock every PostgreSQL write transaction holds ("zkWR").
WRITE_LOCK_KEY = 0x7A6B5752
# How long a writer waits for the lock (or any row lock) before giving up with an
# OperationalError, which the API answers with 503; SQLite's busy timeout is the same.
LOCK_TIMEOUT_MS = 5000


def _postgres_engine(url: str, *, writer: bool) -> Engine:
    """A PostgreSQL engine; a writer's transactions run one at a time.

    The services read, then write on what they read: the serial bump and ``change_id``
    of a zone, the journal append and its trim, "does this name exist" before an insert.
    They were written for SQLite, where ``BEGIN IMMEDIATE`` makes write transactions run
    one after another. On PostgreSQL's READ COMMITTED two such transactions could
    interleave and lose an update (or both pass an existence check), so every write
    transaction begins with ``pg_advisory_xact_lock``: one lock per database, taken before
    anything is read and released by the commit or rollback. Writers queue exactly as on
    SQLite (also across processes sharing the database), and as each statement of a READ
    COMMITTED transaction sees everything committed before it, what a writer reads is what
    the previous writer left. That is simpler than row locks at each read-then-write (one
    forgotten ``with_for_update`` is a lost update) and needs no retry loop the way
    SERIALIZABLE would. Reads take no lock and never wait for writers. ``lock_timeout``
    bounds the wait: past it the transaction fails with LockNotAvailable, an
    OperationalError like SQLite's "database is locked", and nothing was changed."""
    # A reader sees one snapshot for its whole transaction (REPEATABLE READ; a read-only
    # transaction never fails for it), so a zone and its nodes, or a page and its count,
    # are read as of one moment, as a SQLite read transaction does. A writer stays READ
    # COMMITTED: its statements must see what the writer before it committed while it
    # waited for the lock.
    engine = create_engine(url, pool_pre_ping=True,
                           isolation_level="READ COMMITTED" if writer else "REPEATABLE READ")
    if writer:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

    return engine


class Database:
    """A read engine and a write engine on one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # This process among the nodes sharing the database: what it announces to the
        # others (``repo.announce``) carries it, so that it skips its own announcements.
        self.node = uuid.uuid4().hex[:12]
        self._write_queue: threading.Lock | None = threading.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            self.read_engine = _sqlite_engine(url, immediate=False)
            self.write_engine = _sqlite_engine(url, immediate=True)
        else:
            self.read_engine = _postgres_engine(url, writer=False)
            self.write_engine = _postgres_engine(url, writer=True)
        self._stamp: bytes | None = None  # the database stamp once read (stamp)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False,
                                   info={"node": self.node})

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: commits on success, rolls back on any exception.

        On SQLite the writers of this process queue on a lock before ``BEGIN IMMEDIATE``:
        SQLite's own wait for the write lock is a sleep-and-retry (up to 100 ms a retry),
        which with a few concurrent writers wasted most of the time the lock was free and
        made latency spiky. Its busy timeout still covers other processes (the CLI)."""
        if self._write_queue is None:
            with self._write() as session, session.begin():
                yield session
            return
        with self._write_queue, self._write() as session, session.begin():
            yield session

    async def run_read(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` in a read transaction, in a worker thread."""

        def work() -> T:
            with self.read() as s:
                return fn(s)

        return await asyncio.to_thread(work)

    async def run_write(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` in one write transaction, in a worker thread."""

        def work() -> T:
            with self.write() as s:
                return fn(s)

        return await asyncio.to_thread(work)

    def ping(self) -> None:
        """One cheap round trip to the database; raises when it cannot be reached. On SQLite
        it reads the schema page of the file, on PostgreSQL it asks the server."""
        query = "SELECT count(*) FROM sqlite_master" if self.is_sqlite else "SELECT 1"
        with self.read_engine.connect() as conn:
            conn.exec_driver_sql(query).scalar()
            conn.rollback()

    def dispose(self) -> None:
        self.read_engine.dispose()
        self.write_engine.dispose()

    # -- migrations ---------------------------------------------------------------------
    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url)
        return cfg

    def current_revision(self) -> str | None:
        with self.read_engine.connect() as conn:
            if "alembic_version" not in inspect(conn).get_table_names():
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def schema_state(self) -> tuple[str | None, str]:
        """(current revision or None for an empty database, head revision)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        assert head is not None
        with self.write_engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        return current, head

    def upgrade(self) -> None:
        """Every migration up to the head, in one transaction. On SQLite, with foreign-key
        enforcement off while it runs: a migration that recreates a table (Alembic's batch
        "move and copy") drops the old one, and with enforcement on that drop would first
        delete its rows, cascading to every table that references it. The pragma is a
        no-op inside a transaction, so it is set on the bare connection before the
        transaction begins; before the commit, ``foreign_key_check`` must find no broken
        reference, and the connection gets enforcement back whatever happens."""
        from alembic import command

        cfg = self._alembic_config()
        with self.write_engine.connect() as conn:
            raw = conn.connection.dbapi_connection if self.is_sqlite else None
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                    if raw is not None:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise SchemaError(f"the migration left broken references: {broken[:5]}")
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")

    def prepare(self, *, migrate: bool) -> None:
        """Create a new database, or check (and with ``migrate``, upgrade) an existing one;
        then make sure it has its stamp."""
        self._prepare_schema(migrate=migrate)
        self.stamp()

    def stamp(self) -> bytes:
        """The database's stamp (``DATABASE_STAMP`` in ``server_secrets``: random, made the
        first time it is asked for; copies of the file keep it). The files kept beside a
        database are trusted only if they name it (server/imagecache.py). Read once, then
        kept: a stop asks for it without waiting on the database."""
        if self._stamp is not None:
            return self._stamp
        from zonekeeper.storage.models import ServerSecret

        with self.write() as s:
            row = s.get(ServerSecret, DATABASE_STAMP)
            if row is None:
                row = ServerSecret(name=DATABASE_STAMP, current=os.urandom(16), previous=None,
                                   rotated_at=datetime.now(UTC))
                s.add(row)
            self._stamp = bytes(row.current)
        return self._stamp

    def _prepare_schema(self, *, migrate: bool) -> None:
        if self.current_revision() == SCHEMA_HEAD:
            return
        from alembic.script import ScriptDirectory

        current, head = self.schema_state()
        if current == head:
            return
        script = ScriptDirectory.from_config(self._alembic_config())
        if current is None:
            with self.read_engine.connect() as conn:
                tables = inspect(conn).get_table_names()
            if tables:
                raise SchemaError(
                    "the database has tables but no zonekeeper schema version; refusing to use it"
                )
            self.upgrade()
            return
        known = {rev.revision for rev in script.walk_revisions()}
        if current not in known:
            raise SchemaError(
                f"the database schema ({current}) is newer than this zonekeeper ({head}); "
                "upgrade zonekeeper"
            )
        if not migrate:
            raise SchemaError(
                f"the database schema ({current}) is older than this zonekeeper ({head}); "
                "run with --migrate or 'zonekeeper db upgrade'"
            )
        self.upgrade()
