"""A durable first-in first-out queue of verdicts on disk, so none is lost while a broker or an
endpoint is down, or when adedge stops before they were delivered (the next start sends them).

SQLite (Python's standard library) in WAL mode: each put is one committed transaction, which a
crash of adedge cannot lose or tear, and the delivering thread reads and deletes through its own
connection without blocking the inspecting one.
"""

import sqlite3
import threading
from pathlib import Path

from adedge.errors import AdedgeError

SCHEMA = "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"


class Outbox:
    """put(body) from the inspecting thread; oldest(n) and remove(ids) from the delivering one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise AdedgeError(f"cannot use the outbox {path}: {exc}") from None
        self.local = threading.local()  # one connection per thread, as SQLite asks

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")  # durable across a crash of adedge; WAL keeps it fast
        return db

    @property
    def db(self) -> sqlite3.Connection:
        if not hasattr(self.local, "db"):
            self.local.db = self._connect()
        return self.local.db

    def put(self, body: str) -> None:
        self.db.execute("INSERT INTO outbox (body) VALUES (?)", (body,))

    def oldest(self, limit: int) -> list[tuple[int, str]]:
        return self.db.execute("SELECT id, body FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()

    def remove(self, ids: list[int]) -> None:
        if ids:
            self.db.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))})", ids)

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
