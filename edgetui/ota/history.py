"""The OTA history: one row per install, activation, commit, rollback, prune and refusal.

Rows live in the `ota_history` table (migration 0005) and are never changed once written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from edgetui.config import Paths
from edgetui.db import open_db


@dataclass(frozen=True)
class Event:
    id: int
    at: str
    event: str
    ref: str | None
    from_ref: str | None
    ok: bool
    reason: str
    detail: dict

    def to_dict(self) -> dict:
        return asdict(self)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(paths: Paths, event: str, ref: str | None, reason: str = "", *, ok: bool = True,
           from_ref: str | None = None, detail: dict | None = None, at: str | None = None) -> None:
    db = open_db(p=paths)
    try:
        db.execute(
            "INSERT INTO ota_history (at, event, ref, from_ref, ok, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [at or now_iso(), event, ref, from_ref, int(ok), reason, json.dumps(detail or {}, sort_keys=True)],
        )
    finally:
        db.conn.close()


def events(paths: Paths, limit: int = 200, ref: str | None = None) -> list[Event]:
    """Newest first."""
    db = open_db(p=paths)
    try:
        where, args = ("WHERE ref = ?", [ref]) if ref else ("", [])
        rows = db.execute(
            f"SELECT id, at, event, ref, from_ref, ok, reason, detail FROM ota_history {where} "
            "ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
    finally:
        db.conn.close()
    return [Event(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6] or "", json.loads(r[7] or "{}")) for r in rows]


def previous_active(paths: Paths, current_ref: str | None = None) -> str | None:
    """The version that was active before `current_ref` (default: the latest activation), or None."""
    db = open_db(p=paths)
    try:
        where, args = ("AND ref = ?", [current_ref]) if current_ref else ("", [])
        row = db.execute(
            "SELECT from_ref FROM ota_history WHERE event IN ('activate', 'rollback') AND from_ref IS NOT NULL "
            f"AND ok = 1 {where} ORDER BY id DESC LIMIT 1", args).fetchone()
    finally:
        db.conn.close()
    return row[0] if row else None
