"""Small synthetic bundles for the OTA tests: real files, real signatures, real tar archives.

The payload is a few KiB of random bytes standing in for a model, so installs take milliseconds.
The tokenizer fingerprint of a synthetic bundle is the sha256 of its "model" and template
(`fake_fingerprint`); tests that need the real runtime use the real default bundle instead.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
from dataclasses import replace
from pathlib import Path

from edgetui.config import Paths
from edgetui.ota.archive import write_tar
from edgetui.ota.bundle import Bundle
from edgetui.ota.keys import Keyring
from edgetui.ota.manager import Ota
from edgetui.ota.manifest import Manifest, entry_for
from edgetui.ota.smoke import SmokeResult

CLOCK = "2026-01-02T03:04:05+00:00"


def fake_fingerprint(bundle: Bundle) -> str:
    h = hashlib.sha256()
    h.update((bundle.root / bundle.runtime["model"]).read_bytes())
    h.update(bundle.template.encode())
    return h.hexdigest()


def passing_smoke(bundle, paths, baseline, timeout_s) -> SmokeResult:
    return SmokeResult(True, (), "run-ok")


def failing_smoke(bundle, paths, baseline, timeout_s) -> SmokeResult:
    return SmokeResult(False, ("quality 0.000 < bar 0.500",), "run-bad")


def make_ota(home: Paths, **kw) -> Ota:
    kw.setdefault("fingerprint", fake_fingerprint)
    kw.setdefault("smoke", passing_smoke)
    kw.setdefault("now", lambda: CLOCK)
    return Ota(home, **kw)


def make_bundle_dir(root: Path, name: str = "demo", version: str = "1.0.0", seed: int = 0,
                    keyring: Keyring | None = None, big: int = 64 * 1024, **manifest_overrides) -> Path:
    """A closed, fingerprinted bundle directory; signed when a keyring with a key is given."""
    rng = random.Random(f"{name}{version}{seed}")
    d = root / f"{name}-{version}-{seed}"
    files = {
        "model/model.gguf": rng.randbytes(4096),
        "template.txt": b"<|im_start|>user\n{context}\n{question}<|im_end|>\n",
        "corpus/POL-01-lockout.md": b"# POL-01\n## 1 Scope\nLock it out.\n",
        "corpus/POL-02-seals.md": b"# POL-02\n## 4 Kits\nUse SK-2240.\n",
        "data/big.bin": rng.randbytes(big),
    }
    for rel, data in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    m = Manifest(name=name, version=version, created=CLOCK,
                 runtime={"engine": "llama", "model": "model/model.gguf", "min_edgetui": "0.1.0", "n_ctx": 512},
                 files=tuple(entry_for(d, rel) for rel in sorted(files)), prompt_template="template.txt",
                 bars={"quality": 0.5}, provenance={"source": "synthetic", "license": "Apache-2.0"})
    m = replace(m, tokenizer_sha256=fake_fingerprint(Bundle(d, m)))
    if manifest_overrides:
        m = replace(m, **manifest_overrides)
    if keyring is not None:
        m = keyring.sign(m)
    m.save(d / "manifest.json")
    return d


def tar_of(bundle_dir: Path, out: Path | None = None) -> Path:
    m = Manifest.load(bundle_dir / "manifest.json")
    out = out or bundle_dir.parent / f"{bundle_dir.name}.tar"
    write_tar(out, m, payload_root=bundle_dir)
    return out


def committed_store(home: Paths, src: Path, version: str = "1.0.0") -> Keyring:
    """A new keyring with one key, and demo@`version` (built under `src`, signed by it) installed, active and
    committed in `home`; returns the keyring."""
    kr = Keyring(home.keys)
    kr.keygen()
    make_ota(home).install(tar_of(make_bundle_dir(src, version=version, keyring=kr)), activate=True)
    return kr


def raw_tar(out: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """An archive exactly as given (for the hostile cases write_tar would never produce)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in members:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return out


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = linkname
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    ti.mode = 0o644
    return ti, (data if kind == tarfile.REGTYPE else None)


def members_of(bundle_dir: Path, manifest: Manifest | None = None) -> list[tuple]:
    """(TarInfo, bytes) for manifest.json and every payload file of a bundle directory."""
    m = manifest or Manifest.load(bundle_dir / "manifest.json")
    out = [member("manifest.json", m.to_bytes())]
    out += [member(f.path, (bundle_dir / f.path).read_bytes()) for f in m.files]
    return out


def store_snapshot(home: Paths) -> dict:
    """Everything under the store (type, size, sha256 of files) plus ACTIVE and STATE contents."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(home.store):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = p.relative_to(home.store).as_posix()
            if rel == ".lock":
                continue
            if p.is_symlink():
                snap[rel] = ("link", os.readlink(p))
            elif p.is_file():
                snap[rel] = ("file", p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                snap[rel] = ("dir",)
    return snap


def assert_one_active_verifying(home: Paths, allowed: set[str]) -> str:
    from edgetui.ota.store import Store

    st = Store(home.store)
    ref = st.active_ref_str()
    assert ref in allowed, f"ACTIVE names {ref}, expected one of {allowed}"
    b = st.active()
    assert b.ref == ref  # the pointer and the directory it names agree: never a mix
    assert b.verify() == [], f"active {ref} does not verify: {b.verify()}"
    return ref


def fixed_keyring(home: Paths) -> Keyring:
    """A keyring whose one key is always the same (stable key ids in snapshots)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edgetui.ota.keys import key_id

    kr = Keyring(home.keys)
    priv = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    kid = key_id(priv.public_key())
    kr.private_dir.mkdir(parents=True, exist_ok=True)
    (kr.private_dir / f"{kid}.pem").write_bytes(priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    kr.trust_pem(priv.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    return kr
