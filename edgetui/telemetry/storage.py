"""Telemetry rows in the one database (tables from migrations/0003_telemetry.sql).

Each writer (sampler thread, run worker) holds its own connection: open with `TelemetryStore.open(path)`.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from edgetui.db import open_db
from edgetui.telemetry.sample import Sample
from edgetui.telemetry.throttle import ThrottleEvent
from edgetui.telemetry.verdict import Verdict

UNTAGGED_KEEP_S = 24 * 3600  # samples taken outside a run are kept one day
ABANDONED_S = 120.0  # a 'running' run with nothing recorded for this long lost its process (kill -9, power)


@dataclass(frozen=True)
class RunRow:
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
    def from_row(cls, r: dict) -> RunRow:
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
            "INSERT INTO telemetry_runs (started, status, bundle, host, minutes, max_requests, bar_floor_tps) "
            "VALUES (?, 'running', ?, ?, ?, ?, ?)",
            (started or time.time(), bundle, socket.gethostname(), minutes, max_requests, bar_floor_tps),
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

    def run(self, run_id: int) -> RunRow | None:
        rows = list(self.db.query("SELECT * FROM telemetry_runs WHERE id=?", [run_id]))
        return RunRow.from_row(rows[0]) if rows else None

    def close_abandoned(self, now: float | None = None) -> int:
        """Mark runs whose recording process died without a word as incomplete (they keep their rows), and
        close the throttle events it left open; returns the number of runs marked."""
        cutoff = (now or time.time()) - ABANDONED_S
        cur = self.db.execute(
            "UPDATE telemetry_runs SET status='incomplete', reason='abandoned: the process recording it stopped', "
            "ended=MAX(started, COALESCE((SELECT MAX(t) FROM telemetry_samples WHERE run_id=telemetry_runs.id), 0), "
            "COALESCE((SELECT MAX(t) FROM telemetry_requests WHERE run_id=telemetry_runs.id), 0)) "
            "WHERE status='running' AND started<? "
            "AND COALESCE((SELECT MAX(t) FROM telemetry_samples WHERE run_id=telemetry_runs.id), 0)<? "
            "AND COALESCE((SELECT MAX(t) FROM telemetry_requests WHERE run_id=telemetry_runs.id), 0)<?",
            (cutoff, cutoff, cutoff))
        # events left open by a process that died: they end at the last sample anyone took
        self.db.execute(
            "UPDATE throttle_events SET end=MAX(start, COALESCE((SELECT MAX(t) FROM telemetry_samples), start)) "
            "WHERE end IS NULL AND COALESCE((SELECT MAX(t) FROM telemetry_samples), 0)<?", (cutoff,))
        return cur.rowcount

    def runs(self, limit: int = 50) -> list[RunRow]:
        return [RunRow.from_row(r) for r in self.db.query(
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
            "INSERT INTO throttle_events (run_id, cause, subject, detail, start) VALUES (?, ?, ?, ?, ?)",
            (run_id, ev.cause, ev.subject, ev.detail, ev.start),
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
