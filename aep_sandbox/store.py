"""Resource metadata on disk: one SQLite file, rows keyed by (org, sandbox, kind, id).

Several sandbox processes may serve the same data directory; SQLite in WAL mode with a busy
timeout serialises their writes, and read-modify-write goes through :meth:`Scope.update`.
"""

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import names

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    org TEXT NOT NULL, sandbox TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
    name TEXT, created INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (org, sandbox, kind, id)
);
CREATE INDEX IF NOT EXISTS resources_name ON resources (org, sandbox, kind, name);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, client_id TEXT, expires REAL);
"""


def _require_id(kind: str, id: object) -> None:
    """Ids come from callers' bodies too: one of the wrong type is their 400, not the store's fault."""
    if not isinstance(id, str):
        raise names.InvalidName(f"The {kind} id {id!r} is not a string; ids are strings such as '5f3b...'.")


def _token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.path.touch(mode=0o600, exist_ok=True)
        self._connection().executescript(_SCHEMA)
        for owned in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
            if owned.exists():
                os.chmod(owned, 0o600)  # tokens and connection secrets live here: owner only

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def read(self) -> sqlite3.Connection:
        return self._connection()

    def scope(self, org: str, sandbox: str) -> "Scope":
        return Scope(self, org, names.sandbox_name(sandbox))

    # Tokens are global to the data directory, not per sandbox, and kept only as hashes: whoever reads the
    # file cannot present them.
    def add_token(self, token: str, client_id: str, expires: float) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?)", (_token_hash(token), client_id, expires))

    def token_client(self, token: str) -> str | None:
        row = self.read().execute(
            "SELECT client_id FROM tokens WHERE token = ? AND expires > ?", (_token_hash(token), time.time())
        ).fetchone()
        return row[0] if row else None


class Scope:
    """The resources of one (org, sandbox), as moto's BackendDict keys a region."""

    def __init__(self, store: Store, org: str, sandbox: str) -> None:
        self.store, self.org, self.sandbox = store, org, sandbox

    def put(self, kind: str, id: str, body: dict, name: str | None = None) -> dict:
        _require_id(kind, id)
        if name is not None and not isinstance(name, str):
            raise names.InvalidName(f"The {kind}'s name {name!r} is not a string; give it a name such as 'My "
                                    f"{kind}'.")
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.org, self.sandbox, kind, id, name, body.get("created") or now_ms(), json.dumps(body)),
            )
        return body

    def get(self, kind: str, id: str) -> dict | None:
        _require_id(kind, id)
        row = self.store.read().execute(
            "SELECT body FROM resources WHERE org=? AND sandbox=? AND kind=? AND id=?",
            (self.org, self.sandbox, kind, id),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def list(self, kind: str, name: str | None = None) -> list[dict]:
        if name is not None and not isinstance(name, str):
            raise names.InvalidName(f"The {kind} name {name!r} to look up is not a string.")
        sql = "SELECT body FROM resources WHERE org=? AND sandbox=? AND kind=?"
        args: list = [self.org, self.sandbox, kind]
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        rows = self.store.read().execute(sql + " ORDER BY created, id", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete(self, kind: str, id: str) -> bool:
        _require_id(kind, id)
        with self.store.transaction() as db:
            cur = db.execute(
                "DELETE FROM resources WHERE org=? AND sandbox=? AND kind=? AND id=?",
                (self.org, self.sandbox, kind, id),
            )
        return cur.rowcount > 0

    def update(self, kind: str, id: str, change: Callable[[dict], dict | None]) -> dict | None:
        """Apply ``change`` to the stored body inside one write transaction."""
        _require_id(kind, id)
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT body, name FROM resources WHERE org=? AND sandbox=? AND kind=? AND id=?",
                (self.org, self.sandbox, kind, id),
            ).fetchone()
            if row is None:
                return None
            body = json.loads(row[0])
            new = change(body) or body
            db.execute(
                "UPDATE resources SET body=?, name=? WHERE org=? AND sandbox=? AND kind=? AND id=?",
                (json.dumps(new), new.get("name", row[1]), self.org, self.sandbox, kind, id),
            )
        return new
