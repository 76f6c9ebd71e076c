"""What the store holds, as plain rows for `bundle list`, `show` and the bundles screen; `verify`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from edgetui.assistant import payload as assistant_payload
from edgetui.ota.errors import Refused
from edgetui.ota.manager import Ota
from edgetui.ota.manifest import verify_files


@dataclass(frozen=True)
class VersionRow:
    ref: str
    name: str
    version: str
    active: bool
    status: str  # good | bad | trial | installed | interrupted | rolled-back
    signer: str | None
    unsigned: bool
    verified: dict | None  # {"at", "ok"} of the last full verification
    size: int
    installed_at: str | None
    smoke: dict | None  # last smoke result: passed, reasons, run_id, at
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VerifyReport:
    ref: str
    ok: bool
    problems: tuple[str, ...]
    signer: str | None
    unsigned: bool
    files: int
    bytes: int
    seconds: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["problems"] = list(self.problems)
        return d


def versions(ota: Ota) -> list[VersionRow]:
    st = ota.store.state()
    active = ota.store.active_ref_str()
    rows = []
    for b in ota.store.installed():
        e = st.versions.get(b.ref, {})
        sig = b.manifest.signature or {}
        rows.append(VersionRow(
            ref=b.ref, name=b.name, version=b.version, active=b.ref == active, status=st.status(b.ref),
            signer=sig.get("key_id"), unsigned=not sig, verified=e.get("verified"), size=b.manifest.total_size,
            installed_at=e.get("installed_at"), smoke=e.get("smoke"), reason=e.get("reason", "")))
    return rows


def show(ota: Ota, ref: str | None = None) -> dict:
    b = ota.store.get_ref(ref) if ref else ota.store.active()
    row = next(r for r in versions(ota) if r.ref == b.ref)
    return {"version": row.to_dict(), "manifest": b.manifest.to_dict(), "digest": b.manifest.digest(),
            "root": str(b.root)}


def verify(ota: Ota, ref: str | None = None, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Hash every file against the manifest, check closedness and the signature; record the result."""
    b = ota.store.get_ref(ref) if ref else ota.store.active()
    t0 = time.monotonic()
    total, done = b.manifest.total_size, [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], total)

    problems = verify_files(b.root, b.manifest, tick)
    if not problems and (why := assistant_payload.problem(b.root)):
        problems.append(why)
    st = ota.store.state()
    unsigned_ok = bool(st.versions.get(b.ref, {}).get("unsigned"))
    signer = None
    try:
        signer = ota.keyring.check(b.manifest, allow_unsigned=unsigned_ok).signer
    except Refused as e:
        problems.append(str(e))
    report = VerifyReport(b.ref, not problems, tuple(problems), signer, not b.manifest.signature,
                          len(b.manifest.files), total, time.monotonic() - t0)
    with ota.store.lock():
        st = ota.store.state()
        if ota.store.is_installed(b.ref):
            st.entry(b.ref)["verified"] = {"at": ota.now(), "ok": report.ok}
            ota.store.save_state(st)
    ota.record("verify", b.ref, "verifies" if report.ok else "; ".join(problems), ok=report.ok)
    return report
