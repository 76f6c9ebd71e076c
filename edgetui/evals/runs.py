"""Eval runs in the one database (tables from migrations/0004_evals.sql).

A run row carries everything that makes two runs comparable: the bundle (name, version, manifest
digest, template sha256, runtime flags, bars), the golden set (name, version, sha256, subset and case
order), the edgetui version and the machine. Equal inputs hash to the same `key`: an unfinished run
with the caller's key is resumed instead of started again. Result rows are written once, never updated.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from functools import cache

import sqlite_utils

from edgetui import __version__, owner
from edgetui.evals.golden import GoldenSet
from edgetui.evals.scoring import SCORER_VERSION


@dataclass(frozen=True)
class Target:
    """The bundle under test, as plain data (a Bundle gives one with `Target.of(bundle)`)."""

    name: str
    version: str
    digest: str
    template_sha256: str = ""
    runtime: dict = field(default_factory=dict)
    bars: dict = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def of(cls, bundle) -> Target:
        return cls(bundle.name, bundle.version, bundle.manifest.digest(), bundle.template_sha256,
                   dict(bundle.runtime), dict(bundle.bars))


@dataclass(frozen=True)
class CaseResult:
    """One golden case as run: the score, the answer that earned it and its timings."""

    case_id: str
    slice: str
    passed: bool
    failed: tuple[str, ...]
    reasons: tuple[str, ...]
    precision: float | None
    recall: float | None
    ttft_ms: float | None
    decode_tps: float | None
    decode_tokens: int | None
    gen_ms: float | None
    total_ms: float
    error: str | None
    data: dict  # question, expectations, answer text, citations, abstained, confidential, retrieved, stats

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, r: dict) -> CaseResult:
        return cls(r["case_id"], r["slice"], bool(r["passed"]), tuple(json.loads(r["failed"] or "[]")),
                   tuple(json.loads(r["reasons"] or "[]")), r["precision"], r["recall"], r["ttft_ms"],
                   r["decode_tps"], r["decode_tokens"], r["gen_ms"], r["total_ms"], r["error"],
                   json.loads(r["data"]))


@dataclass(frozen=True)
class RunRow:
    id: int
    started: float
    ended: float | None
    status: str
    pid: int | None
    host: str | None
    key: str
    bundle_name: str
    bundle_version: str
    bundle_digest: str
    golden_name: str
    golden_version: str
    golden_sha256: str
    golden_path: str | None
    subset: str
    case_ids: list[str]
    template_sha256: str | None
    runtime: dict
    bars: dict
    edgetui_version: str | None
    machine: dict
    n_cases: int
    n_done: int
    n_passed: int
    quality: float | None
    p50_ttft_ms: float | None
    p95_ttft_ms: float | None
    median_tps: float | None
    min_tps: float | None
    wall_s: float | None
    gen_s: float | None
    load_s: float | None
    slices: list[dict]
    baseline_id: int | None
    gate: dict | None
    passed: bool | None
    scorer_version: int = 1

    JSON_FIELDS = ("case_ids", "runtime", "bars", "machine", "slices", "gate")

    @property
    def bundle_ref(self) -> str:
        return f"{self.bundle_name}@{self.bundle_version}"

    @property
    def golden_label(self) -> str:
        return f"{self.golden_name}/{self.golden_version}"

    @classmethod
    def from_row(cls, r: dict) -> RunRow:
        d = dict(r)
        for k in cls.JSON_FIELDS:
            d[k] = json.loads(d[k]) if d.get(k) else ({} if k in ("runtime", "bars", "machine") else
                                                      (None if k == "gate" else []))
        d["passed"] = None if d["passed"] is None else bool(d["passed"])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


def run_key(target: Target, golden: GoldenSet, subset: str, case_ids: list[str]) -> str:
    ident = {"bundle": [target.name, target.version, target.digest, target.template_sha256, target.runtime],
             "golden": [golden.sha256, subset, case_ids], "edgetui": __version__}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


@cache
def machine_facts() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115 - read a few lines only
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import importlib.metadata

        llama = importlib.metadata.version("llama-cpp-python")
    except Exception:
        llama = None
    return {"host": owner.hostname(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(), "llama_cpp_python": llama}


class RunStore:
    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    # -- writing ---------------------------------------------------------------------------
    def create_run(self, target: Target, golden: GoldenSet, subset: str, case_ids: list[str],
                   now: float | None = None) -> int:
        m = machine_facts()
        pid, host = owner.this_process()
        cur = self.db.execute(
            "INSERT INTO eval_runs (started, status, pid, host, key, bundle_name, bundle_version, bundle_digest, "
            "golden_name, golden_version, golden_sha256, golden_path, subset, case_ids, template_sha256, runtime, "
            "bars, edgetui_version, machine, n_cases, wall_s, gen_s, load_s, scorer_version) "
            "VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?)",
            (now if now is not None else time.time(), pid, host,
             run_key(target, golden, subset, case_ids), target.name, target.version, target.digest,
             golden.name, golden.version, golden.sha256, golden.path, subset, json.dumps(case_ids),
             target.template_sha256, json.dumps(target.runtime, sort_keys=True),
             json.dumps(target.bars, sort_keys=True), __version__, json.dumps(m), len(case_ids), SCORER_VERSION),
        )
        return cur.lastrowid

    def claim(self, run_id: int) -> None:
        """Take over an unfinished run in this process."""
        self.db.execute("UPDATE eval_runs SET status='running', pid=?, host=? WHERE id=?",
                        (*owner.this_process(), run_id))

    def add_result(self, run_id: int, seq: int, r: CaseResult, now: float | None = None) -> None:
        conn = self.db.conn
        conn.execute("BEGIN")
        try:
            conn.execute(
                "INSERT INTO eval_results (run_id, seq, case_id, slice, passed, failed, reasons, precision, recall, "
                "ttft_ms, decode_tps, decode_tokens, gen_ms, total_ms, error, data, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, r.case_id, r.slice, int(r.passed), json.dumps(list(r.failed)),
                 json.dumps(list(r.reasons)), r.precision, r.recall, r.ttft_ms, r.decode_tps, r.decode_tokens,
                 r.gen_ms, r.total_ms, r.error, json.dumps(r.data, default=str),
                 now if now is not None else time.time()),
            )
            conn.execute("UPDATE eval_runs SET n_done=n_done+1, n_passed=n_passed+?, gen_s=gen_s+? WHERE id=?",
                         (int(r.passed), (r.gen_ms or 0.0) / 1000.0, run_id))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise

    def add_time(self, run_id: int, wall_s: float, load_s: float = 0.0) -> None:
        self.db.execute("UPDATE eval_runs SET wall_s=wall_s+?, load_s=load_s+? WHERE id=?", (wall_s, load_s, run_id))

    def interrupt(self, run_id: int) -> None:
        self.db.execute("UPDATE eval_runs SET status='interrupted', pid=NULL WHERE id=? AND status!='complete'",
                        (run_id,))

    def complete(self, run_id: int, summary: dict, gate: dict, passed: bool, baseline_id: int | None,
                 now: float | None = None) -> None:
        """Freeze the run with its summary and gate verdict (the trigger refuses any later change)."""
        self.db.execute(
            "UPDATE eval_runs SET status='complete', ended=?, pid=NULL, quality=?, p50_ttft_ms=?, p95_ttft_ms=?, "
            "median_tps=?, min_tps=?, slices=?, gate=?, passed=?, baseline_id=? WHERE id=?",
            (now if now is not None else time.time(), summary["quality"], summary["p50_ttft_ms"],
             summary["p95_ttft_ms"], summary["median_tps"], summary["min_tps"], json.dumps(summary["slices"]),
             json.dumps(gate), int(passed), baseline_id, run_id),
        )

    # -- reading ---------------------------------------------------------------------------
    def run(self, run_id: int) -> RunRow | None:
        rows = list(self.db.query("SELECT * FROM eval_runs WHERE id=?", [run_id]))
        return RunRow.from_row(rows[0]) if rows else None

    def runs(self, limit: int = 50, status: str | None = None) -> list[RunRow]:
        where, args = ("WHERE status=?", [status]) if status else ("", [])
        return [RunRow.from_row(r) for r in self.db.query(
            f"SELECT * FROM eval_runs {where} ORDER BY id DESC LIMIT ?", [*args, limit])]

    def results(self, run_id: int) -> list[CaseResult]:
        return [CaseResult.from_row(r) for r in self.db.query(
            "SELECT * FROM eval_results WHERE run_id=? ORDER BY seq", [run_id])]

    def done_ids(self, run_id: int) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT case_id FROM eval_results WHERE run_id=?", [run_id])}

    def resumable(self, key: str) -> RunRow | None:
        """The newest unfinished run with this key whose process is gone (or this very process)."""
        for r in self.db.query("SELECT * FROM eval_runs WHERE key=? AND status!='complete' ORDER BY id DESC",
                               [key]):
            row = RunRow.from_row(r)
            if row.status == "interrupted" or row.pid == os.getpid() or owner.is_gone(row.pid, row.host):
                return row
        return None

    def last_passing(self, golden_sha256: str, bundle_ref: str | None = None, exclude_ref: str | None = None,
                     bundle_name: str | None = None, before_id: int | None = None,
                     scorer_version: int = SCORER_VERSION) -> RunRow | None:
        """The newest complete, gate-passing run on this golden set, scored by the same scorer version,
        matching the filters."""
        sql = ("SELECT * FROM eval_runs WHERE status='complete' AND passed=1 AND golden_sha256=? "
               "AND scorer_version=?")
        args: list = [golden_sha256, scorer_version]
        if bundle_ref:
            sql += " AND bundle_name || '@' || bundle_version = ?"
            args.append(bundle_ref)
        if exclude_ref:
            sql += " AND bundle_name || '@' || bundle_version != ?"
            args.append(exclude_ref)
        if bundle_name:
            sql += " AND bundle_name = ?"
            args.append(bundle_name)
        if before_id is not None:
            sql += " AND id < ?"
            args.append(before_id)
        rows = list(self.db.query(sql + " ORDER BY ended DESC, id DESC LIMIT 1", args))
        return RunRow.from_row(rows[0]) if rows else None
