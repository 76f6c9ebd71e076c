"""The one SQLite database (sqlite-utils, WAL) and its versioned migrations.

Each part owns one SQL file in `edgetui/migrations/NNNN_part.sql`; they are applied in number order
exactly once and recorded in `schema_migrations`. Never edit a landed migration: add a new file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from edgetui.config import Paths, paths

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every migration file, in order."""
    out = []
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        num = int(f.name.split("_", 1)[0])
        out.append((num, f.stem, f.read_text()))
    return out


def open_db(path: Path | None = None, p: Paths | None = None) -> sqlite_utils.Database:
    """Open (creating and migrating) the database; WAL so the sampler and the UI can share it."""
    if path is None:
        path = (p or paths()).ensure().db
    conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    migrate(db)
    return db


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply pending migrations, each in its own transaction; return the numbers applied."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, "
        "applied_at TEXT DEFAULT CURRENT_TIMESTAMP)"
    )
    done = {r[0] for r in db.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for num, name, sql in migrations():
        if num in done:
            continue
        conn = db.conn
        conn.execute("BEGIN")
        try:
            for stmt in _statements(sql):
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (num, name))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        applied.append(num)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (sqlite3's complete_statement handles triggers)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
