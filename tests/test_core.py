"""Config, database migrations and the manifest format (no model needed)."""

from __future__ import annotations

import json

import pytest

from edgetui.config import ConfigError, Paths, data_dir, load_settings
from edgetui.db import migrations, open_db
from edgetui.ota.manifest import FileEntry, Manifest, ManifestError, verify_files


def test_data_dir_prefers_edgetui_home_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGETUI_HOME", str(tmp_path / "h"))
    assert data_dir() == tmp_path / "h"
    monkeypatch.delenv("EDGETUI_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    assert data_dir() == tmp_path / "x" / "edgetui"


def test_settings_defaults_and_bad_toml(home: Paths):
    assert load_settings(home).sample_hz == 2.0
    home.settings.write_text("sample_hz = 4.0\nunknown_key = 1\n")
    s = load_settings(home)
    assert s.sample_hz == 4.0 and s.extra == {"unknown_key": 1}
    home.settings.write_text("sample_hz = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(home)


def test_migrations_apply_once_and_use_wal(home: Paths):
    db = open_db(p=home)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m[0] for m in migrations()]
    db.conn.close()
    db2 = open_db(p=home)  # second open applies nothing new
    assert db2.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(versions)


def _manifest(files) -> Manifest:
    return Manifest(name="b", version="1.0.0", created="2026-01-01T00:00:00+00:00",
                    runtime={"engine": "llama"}, files=tuple(files))


def test_canonical_form_ignores_key_order_and_signature(tmp_path):
    m = _manifest([FileEntry("a.txt", "0" * 64, 1)])
    d = m.to_dict()
    d["signature"] = {"key_id": "k", "sig": "x"}
    shuffled = json.loads(json.dumps(dict(reversed(list(d.items())))))
    assert Manifest.from_dict(shuffled).canonical_bytes() == m.canonical_bytes()


def test_verify_names_flipped_missing_and_extra_files(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello")
    from edgetui.ota.manifest import entry_for

    m = _manifest([entry_for(tmp_path, "a.txt"), FileEntry("gone.bin", "0" * 64, 3)])
    (tmp_path / "a.txt").write_bytes(b"hellp")
    (tmp_path / "extra.txt").write_text("x")
    problems = verify_files(tmp_path, m)
    assert any(p.startswith("a.txt: sha256") for p in problems)
    assert "gone.bin: missing" in problems
    assert "extra.txt: not listed in the manifest" in problems


def test_malformed_manifest_is_named(tmp_path):
    p = tmp_path / "manifest.json"
    p.write_text('{"name": "x"}')
    with pytest.raises(ManifestError, match="missing or malformed"):
        Manifest.load(p)
