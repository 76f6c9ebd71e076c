"""Install, activate, smoke-gated commit, auto-rollback, operator rollback, anti-rollback, prune, verify."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from ota_fixtures import (
    assert_one_active_verifying,
    committed_store,
    failing_smoke,
    make_bundle_dir,
    make_ota,
    store_snapshot,
    tar_of,
)

from edgetui.ota.build import sign_bundle
from edgetui.ota.errors import Refused
from edgetui.ota.history import events, previous_active
from edgetui.ota.report import verify, versions
from edgetui.ota.smoke import SmokeResult
from edgetui.ota.store import Store


@pytest.fixture
def dev(home, tmp_path):
    kr = committed_store(home, tmp_path / "src")

    def tar(version: str, **kw):
        return tar_of(make_bundle_dir(tmp_path / "src", version=version, keyring=kr, **kw))

    return SimpleNamespace(home=home, kr=kr, tar=tar, ota=make_ota(home), store=Store(home.store), tmp=tmp_path)


def status(dev, ref):
    return dev.store.state().status(ref)


def test_install_without_activate_keeps_the_active_version(dev):
    out = dev.ota.install(dev.tar("1.1.0"))
    assert out.ok and out.active == "demo@1.0.0"
    assert status(dev, "demo@1.1.0") == "installed"
    assert dev.ota.activate("demo@1.1.0").ok
    assert assert_one_active_verifying(dev.home, {"demo@1.1.0"})
    assert status(dev, "demo@1.1.0") == "good" and dev.store.state().floor["demo"] == "1.1.0"


def test_a_failed_smoke_gate_rolls_back_automatically_and_records_why(dev):
    bad = make_ota(dev.home, smoke=failing_smoke)
    out = bad.install(dev.tar("1.1.0"), activate=True, smoke=True)
    assert not out.ok and out.active == "demo@1.0.0"
    assert "failed its smoke gate (quality 0.000 < bar 0.500): rolled back to demo@1.0.0" in out.message
    assert_one_active_verifying(dev.home, {"demo@1.0.0"})
    st = dev.store.state()
    assert st.status("demo@1.1.0") == "bad" and "quality 0.000" in st.versions["demo@1.1.0"]["reason"]
    assert st.floor["demo"] == "1.0.0"  # a failed trial never raises the anti-rollback floor
    assert st.versions["demo@1.1.0"]["smoke"]["passed"] is False
    ev = events(dev.home, limit=1)[0]
    assert (ev.event, ev.ref, ev.from_ref, ev.ok) == ("auto-rollback", "demo@1.0.0", "demo@1.1.0", False)
    assert "quality 0.000 < bar 0.500" in ev.reason


def test_a_passing_smoke_gate_commits_and_gets_the_previous_bundle_as_baseline(dev):
    seen = {}

    def gate(bundle, paths, baseline, timeout_s):
        seen.update(bundle=bundle.ref, baseline=baseline.ref, timeout=timeout_s)
        return SmokeResult(True, (), "9")

    out = make_ota(dev.home, smoke=gate, smoke_timeout_s=77).install(dev.tar("1.1.0"), activate=True, smoke=True)
    assert out.ok and seen == {"bundle": "demo@1.1.0", "baseline": "demo@1.0.0", "timeout": 77}
    assert status(dev, "demo@1.1.0") == "good"
    assert [e.event for e in events(dev.home, limit=3)] == ["commit", "activate", "install"]


def test_a_smoke_gate_that_raises_in_process_is_a_failure(dev):
    def boom(*a):
        raise RuntimeError("evaluator exploded")

    out = make_ota(dev.home, smoke=boom).install(dev.tar("1.1.0"), activate=True, smoke=True)
    assert not out.ok and "evaluator exploded" in out.message
    assert_one_active_verifying(dev.home, {"demo@1.0.0"})


def test_rollback_returns_to_the_previous_version_and_anti_rollback_allows_only_that(dev):
    dev.ota.install(dev.tar("1.1.0"), activate=True)
    out = dev.ota.rollback()
    assert out.ok and out.active == "demo@1.0.0"
    assert status(dev, "demo@1.1.0") == "rolled-back"
    assert verify(dev.ota, "demo@1.0.0").ok and verify(dev.ota, "demo@1.1.0").ok  # both still verify
    with pytest.raises(Refused, match="anti-rollback"):  # re-installing an old version is a downgrade
        dev.ota.install(dev.tar("0.9.0"))
    with pytest.raises(Refused, match="nothing to roll back to"):
        dev.ota.rollback()
    assert dev.ota.activate("demo@1.1.0").ok  # forward again to the committed version
    assert previous_active(dev.home, "demo@1.1.0") == "demo@1.0.0"


def test_activating_a_version_older_than_the_committed_one_is_refused(dev):
    dev.ota.install(dev.tar("1.1.0"), activate=True)
    with pytest.raises(Refused, match=r"older than the committed demo@1\.1\.0 \(anti-rollback\)"):
        dev.ota.activate("demo@1.0.0")
    assert dev.ota.rollback("demo@1.0.0").ok  # the explicit operator rollback is the escape hatch


def test_rollback_to_a_bad_version_is_refused(dev):
    make_ota(dev.home, smoke=failing_smoke).install(dev.tar("1.1.0"), activate=True, smoke=True)
    with pytest.raises(Refused, match="failed its smoke gate"):
        dev.ota.rollback("demo@1.1.0")


def test_prune_keeps_n_versions_oldest_first_never_active_or_last_good(dev):
    ota = make_ota(dev.home, keep_versions=2)
    for v in ("1.1.0", "1.2.0", "1.3.0"):
        ota.install(dev.tar(v), activate=True)
    assert dev.store.refs() == ["demo@1.1.0", "demo@1.2.0", "demo@1.3.0"]  # 1.0.0 pruned on commit
    assert ota.rollback().active == "demo@1.2.0"
    out = ota.prune(keep=0)
    assert out.detail["removed"] == ["demo@1.1.0", "demo@1.3.0"]
    assert dev.store.refs() == ["demo@1.2.0"]
    assert [e.event for e in events(dev.home, limit=2)] == ["prune", "prune"]


def test_delete_refuses_the_active_and_last_good_versions(dev):
    dev.ota.install(dev.tar("1.1.0"))
    with pytest.raises(Refused, match="is active"):
        dev.ota.delete("demo@1.0.0")
    assert dev.ota.delete("demo@1.1.0").ok
    assert dev.store.refs() == ["demo@1.0.0"]


def test_an_interrupted_trial_is_undone_by_recovery(dev):
    dev.ota.install(dev.tar("1.1.0"))
    st = dev.store.state()
    st.trial = {"ref": "demo@1.1.0", "previous": "demo@1.0.0", "since": "x", "kind": "activate"}
    st.entry("demo@1.1.0")["status"] = "trial"
    dev.store.save_state(st)
    dev.store.set_active("demo", "1.1.0")  # as if the process died during the smoke eval
    note = dev.ota.recover()
    assert "interrupted before its commit" in note
    assert_one_active_verifying(dev.home, {"demo@1.0.0"})
    assert status(dev, "demo@1.1.0") == "interrupted"


def test_verify_finds_a_flipped_byte_in_the_store_and_activation_refuses_it(dev):
    dev.ota.install(dev.tar("1.1.0"))
    p = dev.store.version_dir("demo", "1.1.0") / "data" / "big.bin"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 1
    p.write_bytes(bytes(data))
    rep = verify(dev.ota, "demo@1.1.0")
    assert not rep.ok and rep.problems == ("data/big.bin: sha256 does not match the manifest",)
    assert dev.store.state().versions["demo@1.1.0"]["verified"]["ok"] is False
    with pytest.raises(Refused, match="does not verify: data/big.bin"):
        dev.ota.activate("demo@1.1.0")
    assert_one_active_verifying(dev.home, {"demo@1.0.0"})


def test_a_key_revoked_after_install_blocks_activation_and_shows_in_verify(dev):
    dev.ota.install(dev.tar("1.1.0"))
    dev.kr.revoke(dev.kr.private_keys()[-1])
    assert "revoked key" in verify(dev.ota, "demo@1.1.0").problems[0]
    with pytest.raises(Refused, match="revoked key"):
        dev.ota.activate("demo@1.1.0")


def test_a_retried_install_of_the_same_bundle_is_a_no_op(dev):
    t = dev.tar("1.1.0")
    dev.ota.install(t, activate=True)
    out = dev.ota.install(t, activate=True)
    assert out.ok and "already installed" in out.message and "already active" in out.message


def test_a_copy_of_an_installed_version_with_a_flipped_byte_is_refused_not_a_no_op(dev, tmp_path):
    src = make_bundle_dir(tmp_path / "flip", version="1.1.0", keyring=dev.kr)
    dev.ota.install(tar_of(src), activate=True)
    before = store_snapshot(dev.home)
    model = src / "model" / "model.gguf"
    data = bytearray(model.read_bytes())
    data[100] ^= 0xFF
    model.write_bytes(bytes(data))  # same signed manifest, other bytes
    with pytest.raises(Refused, match=r"demo@1\.1\.0 is installed, but this copy is not the same bundle: "
                                      r"model/model\.gguf: sha256 does not match"):
        dev.ota.install(tar_of(src, tmp_path / "flipped.tar"), activate=True)
    assert store_snapshot(dev.home) == before and dev.store.active_ref_str() == "demo@1.1.0"


def test_sign_a_directory_and_an_archive_then_install_them(dev, tmp_path):
    d = make_bundle_dir(tmp_path / "u", version="1.1.0")  # unsigned
    sign_bundle(dev.home, d)
    assert json.loads((d / "manifest.json").read_text())["signature"]["alg"] == "ed25519"
    assert dev.ota.install(d).ok
    t = tar_of(make_bundle_dir(tmp_path / "u", version="1.2.0"))
    sign_bundle(dev.home, t)
    assert dev.ota.install(t, activate=True).ok


def test_versions_rows_describe_the_store_for_list_and_screen(dev):
    dev.ota.install(dev.tar("1.1.0"), activate=True, smoke=True)
    rows = {r.ref: r for r in versions(dev.ota)}
    new = rows["demo@1.1.0"]
    assert new.active and new.status == "good" and new.signer == dev.kr.private_keys()[-1]
    assert new.smoke["passed"] and new.installed_at == "2026-01-02T03:04:05+00:00" and new.size > 64 * 1024
    assert not rows["demo@1.0.0"].active


def test_app_start_undoes_an_activation_a_crash_left_uncommitted(dev):
    from edgetui.session import active_bundle

    dev.ota.install(dev.tar("1.1.0"))
    st = dev.store.state()
    st.trial = {"ref": "demo@1.1.0", "previous": "demo@1.0.0", "since": "x", "kind": "activate"}
    dev.store.save_state(st)
    dev.store.set_active("demo", "1.1.0")
    with dev.store.lock():  # another process is mid-trial: left alone
        assert active_bundle(dev.home).ref == "demo@1.1.0"
    assert active_bundle(dev.home).ref == "demo@1.0.0"
