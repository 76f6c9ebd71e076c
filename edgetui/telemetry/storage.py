"""Telemetry rows in the one database (tables from migrations/0003_telemetry.sql, owners from 0007).

Each writer (sampler thread, run worker) holds its own connection: open with `TelemetryStore.open(path)`.
Runs and open throttle events record the process that owns them (`edgetui.owner`), so one left behind by a
process that died is told apart exactly from one still going.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from edgetui import owner
from edgetui.db import open_db
from edgetui.telemetry.sample import Sample
from edgetui.telemetry.throttle import ThrottleEvent
from edgetui.telemetry.verdict import Verdict

UNTAGGED_KEEP_S = 24 * 3600  # samples taken outside a run are kept one day


@dataclass(frozen=True)
class TelemetryRun:
    id: int
    started: float
    ended: float | None
    status: str
    reason: str | None
    bundle: str | None
    host: str | None
    minutes: float | None
    max_requests: int | None
    bar_floor_tps: float | None
    verdict: Verdict | None

    @classmethod
    def from_row(cls, r: dict) -> TelemetryRun:
        v = json.loads(r["verdict"]) if r.get("verdict") else None
        return cls(r["id"], r["started"], r["ended"], r["status"], r["reason"], r["bundle"], r["host"],
                   r["minutes"], r["max_requests"], r["bar_floor_tps"], Verdict(**v) if v else None)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["verdict"] = self.verdict.to_dict() if self.verdict else None
        return d


class TelemetryStore:
    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    @classmethod
    def open(cls, path: Path) -> TelemetryStore:
        return cls(open_db(path))

    # -- runs ------------------------------------------------------------------------------
    def create_run(self, bundle: str | None, minutes: float | None, max_requests: int | None,
                   bar_floor_tps: float | None, started: float | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO telemetry_runs (started, status, bundle, pid, host, minutes, max_requests, bar_floor_tps) "
            "VALUES (?, 'running', ?, ?, ?, ?, ?, ?)",
            (started or time.time(), bundle, *owner.this_process(), minutes, max_requests, bar_floor_tps),
        )
        return cur.lastrowid

    def finish_run(self, run_id: int, verdict: Verdict, reason: str | None = None,
                   ended: float | None = None) -> None:
        self.db.execute(
            "UPDATE telemetry_runs SET ended=?, status=?, reason=?, burst_tps=?, floor_tps=?, p95_ttft_ms=?, "
            "tokens_per_joule=?, throttle_events=?, passed=?, verdict=? WHERE id=?",
            (ended or time.time(), "complete" if verdict.complete else "incomplete", reason, verdict.burst_tps,
             verdict.floor_tps, verdict.p95_ttft_ms, verdict.tokens_per_joule, verdict.throttle_events,
             None if verdict.passed is None else int(verdict.passed), json.dumps(verdict.to_dict()), run_id),
        )

    def run(self, run_id: int) -> TelemetryRun | None:
        rows = list(self.db.query("SELECT * FROM telemetry_runs WHERE id=?", [run_id]))
        return TelemetryRun.from_row(rows[0]) if rows else None

    def close_abandoned(self) -> int:
        """Mark running runs whose process is gone (kill -9, power loss) as incomplete, ending at the last
        thing they recorded (they keep their rows), and end the throttle events such a process left open at
        the last sample of the same run; returns the number of runs marked."""
        runs = [r["id"] for r in self.db.query("SELECT id, pid, host FROM telemetry_runs WHERE status='running'")
                if owner.is_gone(r["pid"], r["host"])]
        for rid in runs:
            self.db.execute(
                "UPDATE telemetry_runs SET status='incomplete', reason='abandoned: the process recording it stopped', "
                "ended=MAX(started, COALESCE((SELECT MAX(t) FROM telemetry_samples WHERE run_id=?), 0), "
                "COALESCE((SELECT MAX(t) FROM telemetry_requests WHERE run_id=?), 0)) WHERE id=?", (rid, rid, rid))
        events = [r["id"] for r in self.db.query("SELECT id, pid, host FROM throttle_events WHERE end IS NULL")
                  if owner.is_gone(r["pid"], r["host"])]
        for eid in events:
            self.db.execute(
                "UPDATE throttle_events SET end=MAX(start, COALESCE((SELECT MAX(s.t) FROM telemetry_samples s "
                "WHERE s.run_id IS throttle_events.run_id), start)) WHERE id=?", (eid,))
        return len(runs)

    def runs(self, limit: int = 50) -> list[TelemetryRun]:
        return [TelemetryRun.from_row(r) for r in self.db.query(
            "SELECT * FROM telemetry_runs ORDER BY id DESC LIMIT ?", [limit])]

    # -- samples ---------------------------------------------------------------------------
    def add_sample(self, s: Sample) -> None:
        self.db.execute(
            "INSERT INTO telemetry_samples (run_id, t, tps, hottest_c, freq_mhz, power_w, throttle, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (s.run_id, s.t, s.tps, s.hottest_c, s.freq_mhz, s.power_w, "; ".join(s.throttle) or None,
             json.dumps(s.to_dict())),
        )

    def samples(self, run_id: int | None = None, since: float | None = None, limit: int | None = None,
                ) -> list[Sample]:
        where, args = ("run_id=?", [run_id]) if run_id is not None else ("1=1", [])
        if since is not None:
            where += " AND t>=?"
            args.append(since)
        sql = f"SELECT data FROM telemetry_samples WHERE {where} ORDER BY t DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = self.db.execute(sql, args).fetchall()[::-1]  # newest `limit`, oldest first
        return [Sample.from_dict(json.loads(r[0])) for r in rows]

    def latest_sample(self) -> Sample | None:
        rows = self.db.execute("SELECT data FROM telemetry_samples ORDER BY t DESC LIMIT 1").fetchall()
        return Sample.from_dict(json.loads(rows[0][0])) if rows else None

    def prune(self, now: float | None = None, keep_s: float = UNTAGGED_KEEP_S) -> int:
        cur = self.db.execute("DELETE FROM telemetry_samples WHERE run_id IS NULL AND t<?",
                              ((now or time.time()) - keep_s,))
        return cur.rowcount

    # -- requests --------------------------------------------------------------------------
    def add_request(self, run_id: int, seq: int, question: str, t: float, stats: dict | None,
                    error: str | None = None) -> None:
        s = stats or {}
        self.db.execute(
            "INSERT INTO telemetry_requests (run_id, seq, question, t, ttft_ms, decode_tps, decode_tokens, "
            "prompt_tokens, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, seq, question, t, s.get("ttft_ms"), s.get("decode_tps"), s.get("decode_tokens"),
             s.get("prompt_tokens"), error),
        )

    def requests(self, run_id: int) -> list[dict]:
        return list(self.db.query("SELECT * FROM telemetry_requests WHERE run_id=? ORDER BY seq", [run_id]))

    # -- throttle events -------------------------------------------------------------------
    def open_event(self, ev: ThrottleEvent, run_id: int | None) -> None:
        cur = self.db.execute(
            "INSERT INTO throttle_events (run_id, cause, subject, detail, start, pid, host) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, ev.cause, ev.subject, ev.detail, ev.start, *owner.this_process()),
        )
        ev.id = cur.lastrowid

    def close_event(self, ev: ThrottleEvent) -> None:
        if ev.id is not None:
            self.db.execute("UPDATE throttle_events SET end=? WHERE id=?", (ev.end, ev.id))

    def events(self, run_id: int) -> list[ThrottleEvent]:
        rows = self.db.query(
            "SELECT id, cause, subject, detail, start, end FROM throttle_events WHERE run_id=? ORDER BY start, id",
            [run_id])
        return [ThrottleEvent(r["cause"], r["subject"], r["detail"], r["start"], r["end"], r["id"]) for r in rows]

    def events_between(self, start: float, end: float) -> list[ThrottleEvent]:
        """Events that overlap [start, end], whatever run (if any) they were tagged with."""
        rows = self.db.query(
            "SELECT id, cause, subject, detail, start, end FROM throttle_events "
            "WHERE start<=? AND (end IS NULL OR end>=?) ORDER BY start, id", [end, start])
        return [ThrottleEvent(r["cause"], r["subject"], r["detail"], r["start"], r["end"], r["id"]) for r in rows]
