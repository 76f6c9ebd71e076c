"""Every bad input the OTA issue lists is refused with the file or field named, the store unchanged."""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import replace
from types import SimpleNamespace

import pytest
from ota_fixtures import (
    committed_store,
    make_bundle_dir,
    make_ota,
    member,
    members_of,
    raw_tar,
    store_snapshot,
    tar_of,
)

from edgetui.ota.errors import BadInput, Refused
from edgetui.ota.history import events
from edgetui.ota.keys import Keyring
from edgetui.ota.manifest import FileEntry, Manifest


@pytest.fixture
def ctx(home, tmp_path):
    """A store with demo@1.1.0 installed, signed, active and committed."""
    src = tmp_path / "src"
    return SimpleNamespace(home=home, kr=committed_store(home, src, "1.1.0"), src=src, tmp=tmp_path)


def good_dir(c, version="1.2.0", **kw):
    return make_bundle_dir(c.src, version=version, keyring=c.kr, **kw)


def flipped(c, rel, where):
    t = tar_of(good_dir(c))
    with tarfile.open(t) as tar:
        m = tar.getmember(rel)
    pos = m.offset_data + {"first": 0, "middle": m.size // 2, "last": m.size - 1}[where]
    with open(t, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x01]))
    return t


def signed_manifest(c, d, **changes) -> Manifest:
    m = Manifest.load(d / "manifest.json")
    return c.kr.sign(replace(m, signature=None, **changes))


def archive_with_manifest(c, m: Manifest, d, extra_members=()):
    rows = [member("manifest.json", m.to_bytes())]
    rows += [member(f.path, (d / f.path).read_bytes()) for f in m.files if (d / f.path).is_file()]
    return raw_tar(c.tmp / "bad.tar", rows + list(extra_members))


def edited_files(edit):
    """A builder: an archive whose manifest's `files` list is edited as JSON, then signed again
    (for entries a Manifest object would never produce)."""

    def build(c):
        d = good_dir(c)
        raw = json.loads(Manifest.load(d / "manifest.json").to_bytes())
        edit(raw["files"])
        m = Manifest(**{k: v for k, v in raw.items() if k != "files"},
                     files=tuple(FileEntry(**f) for f in raw["files"]))
        raw["signature"] = c.kr.sign(replace(m, signature=None)).signature
        rows = [member("manifest.json", json.dumps(raw).encode())] + members_of(d)[1:]
        return raw_tar(c.tmp / "bad.tar", rows)

    return build


def with_extra_members(c, *extra):
    d = good_dir(c)
    return raw_tar(c.tmp / "bad.tar", members_of(d) + list(extra))


def without(c, rel):
    d = good_dir(c)
    return raw_tar(c.tmp / "bad.tar", [r for r in members_of(d) if r[0].name != rel])


def longer_than_declared(c, as_dir=False):
    d = good_dir(c)
    m = Manifest.load(d / "manifest.json")
    big = (d / "data/big.bin").read_bytes()
    import hashlib

    files = tuple(FileEntry(f.path, hashlib.sha256(big[:100]).hexdigest(), 100) if f.path == "data/big.bin" else f
                  for f in m.files)
    m2 = signed_manifest(c, d, files=files)
    if as_dir:
        m2.save(d / "manifest.json")
        return d
    return raw_tar(c.tmp / "bad.tar", [member("manifest.json", m2.to_bytes())] + members_of(d)[1:])


def other_key_signature(c, claim_trusted: bool):
    other = Keyring(c.tmp / "other-keys")
    other.keygen()
    d = good_dir(c)
    m = other.sign(replace(Manifest.load(d / "manifest.json"), signature=None))
    if claim_trusted:  # says it is our key, but was made with another one
        m = replace(m, signature={**m.signature, "key_id": c.kr.private_keys()[-1]})
    return archive_with_manifest(c, m, d)


def revoked_key(c):
    d = good_dir(c)
    kid = c.kr.keygen()
    m = c.kr.sign(replace(Manifest.load(d / "manifest.json"), signature=None), kid)
    c.kr.revoke(kid)
    return archive_with_manifest(c, m, d)


def tampered_after_signing(c):
    d = good_dir(c)
    m = Manifest.load(d / "manifest.json")
    return archive_with_manifest(c, replace(m, bars={"quality": 0.0}), d)


def flipped_manifest_byte(c):
    d = good_dir(c)
    data = Manifest.load(d / "manifest.json").to_bytes().replace(b"Apache-2.0", b"Apache-3.0")
    return raw_tar(c.tmp / "bad.tar", [member("manifest.json", data)] + members_of(d)[1:])


def with_manifest(c, **changes):
    d = good_dir(c)
    return archive_with_manifest(c, signed_manifest(c, d, **changes), d)


def dir_with(c, make):
    d = good_dir(c)
    make(d)
    return d


def special(kind, name="corpus/odd.md", link=""):
    return lambda c: with_extra_members(c, member(name, kind=kind, linkname=link))


# (id, build(ctx) -> path, Ota overrides, install kwargs, regex that must name the file or field)
CASES = [
    ("flipped-first-byte", lambda c: flipped(c, "data/big.bin", "first"), {}, {}, r"data/big\.bin: sha256"),
    ("flipped-middle-byte", lambda c: flipped(c, "data/big.bin", "middle"), {}, {}, r"data/big\.bin: sha256"),
    ("flipped-last-byte", lambda c: flipped(c, "data/big.bin", "last"), {}, {}, r"data/big\.bin: sha256"),
    ("flipped-template-byte", lambda c: flipped(c, "template.txt", "middle"), {}, {}, r"template\.txt: sha256"),
    ("flipped-manifest-byte", flipped_manifest_byte, {}, {}, r"field 'signature' does not verify"),
    ("file-missing", lambda c: without(c, "corpus/POL-02-seals.md"), {}, {}, r"corpus/POL-02-seals\.md: missing"),
    ("file-extra", lambda c: with_extra_members(c, member("corpus/extra.md", b"x")), {}, {},
     r"corpus/extra\.md: not listed"),
    ("file-extra-in-directory", lambda c: dir_with(c, lambda d: (d / "extra.bin").write_bytes(b"x")), {}, {},
     r"extra\.bin: not listed"),
    ("duplicate-manifest-entry", edited_files(lambda f: f.append(dict(f[0]))), {}, {},
     r"files\[5\]: duplicate entry for 'corpus/POL-01"),
    ("conflicting-manifest-entries", edited_files(lambda f: f.append({**f[0], "sha256": "0" * 64})), {}, {},
     r"files\[5\]: conflicting entry for 'corpus/POL-01"),
    ("file-and-directory-conflict",
     edited_files(lambda f: f.append({"path": "corpus", "sha256": "0" * 64, "size": 0})), {}, {},
     r"conflicting entries 'corpus' and 'corpus/"),
    ("duplicate-archive-member", lambda c: with_extra_members(c, member("template.txt", b"again")), {}, {},
     r"template\.txt: duplicate entry in the archive"),
    ("dotdot-path-in-manifest", edited_files(lambda f: f[0].update(path="../evil.md")), {}, {},
     r"files\[0\]\.path '\.\./evil\.md' escapes"),
    ("dotdot-member", lambda c: with_extra_members(c, member("../evil.md", b"x")), {}, {},
     r"'\.\./evil\.md' escapes the bundle"),
    ("absolute-member", lambda c: with_extra_members(c, member("/tmp/evil.md", b"x")), {}, {},
     r"'/tmp/evil\.md' is an absolute path"),
    ("symlink-member", special(tarfile.SYMTYPE, link="/etc/passwd"), {}, {}, r"corpus/odd\.md: symlink"),
    ("hardlink-member", special(tarfile.LNKTYPE, link="template.txt"), {}, {}, r"corpus/odd\.md: hard link"),
    ("char-device-member", special(tarfile.CHRTYPE), {}, {}, r"corpus/odd\.md: device"),
    ("block-device-member", special(tarfile.BLKTYPE), {}, {}, r"corpus/odd\.md: device"),
    ("fifo-member", special(tarfile.FIFOTYPE), {}, {}, r"corpus/odd\.md: fifo"),
    ("symlink-in-directory", lambda c: dir_with(c, lambda d: os.symlink("/etc/passwd", d / "corpus/link.md")), {},
     {}, r"corpus/link\.md: symlink"),
    ("fifo-in-directory", lambda c: dir_with(c, lambda d: os.mkfifo(d / "corpus/pipe")), {}, {},
     r"corpus/pipe: not a regular file"),
    ("malformed-digest", edited_files(lambda f: f[0].update(sha256="XYZ")), {}, {},
     r"files\[0\]\.sha256 .* malformed digest"),
    ("manifest-over-64KiB", lambda c: with_manifest(c, extra={"pad": "x" * 70_000}), {}, {},
     r"manifest\.json is \d+ bytes, over the 65536-byte limit"),
    ("unknown-schema", lambda c: with_manifest(c, schema="edgetui.bundle/9"), {}, {},
     r"field 'schema' is 'edgetui\.bundle/9', an unknown schema"),
    ("payload-longer-than-declared", longer_than_declared, {}, {}, r"data/big\.bin: payload longer than declared"),
    ("payload-longer-in-directory", lambda c: longer_than_declared(c, as_dir=True), {}, {},
     r"data/big\.bin: payload longer than declared"),
    ("unknown-key", lambda c: other_key_signature(c, claim_trusted=False), {}, {},
     r"signature\.key_id \w+ is an unknown"),
    ("wrong-key", lambda c: other_key_signature(c, claim_trusted=True), {}, {}, r"field 'signature' does not verify"),
    ("revoked-key", revoked_key, {}, {}, r"signature\.key_id \w+ is a revoked key"),
    ("tampered-after-signing", tampered_after_signing, {}, {}, r"field 'signature' does not verify"),
    ("unsigned", lambda c: tar_of(make_bundle_dir(c.src, version="1.2.0")), {}, {},
     r"field 'signature' is missing \(unsigned bundle\)"),
    ("min-edgetui-newer", lambda c: tar_of(good_dir(c, runtime={"engine": "llama", "model": "model/model.gguf",
                                                               "min_edgetui": "99.0.0"})), {}, {},
     r"field 'runtime\.min_edgetui' is 99\.0\.0, newer than this edgetui"),
    ("tokenizer-fingerprint-mismatch", lambda c: tar_of(good_dir(c, tokenizer_sha256="ab" * 32)), {}, {},
     r"tokenizer fingerprint mismatch: manifest\.json field 'tokenizer_sha256'"),
    ("not-enough-disk", lambda c: tar_of(good_dir(c)), {"free_bytes": lambda p: 1 << 20}, {},
     r"demo@1\.2\.0: not enough disk space"),
    ("downgrade", lambda c: tar_of(good_dir(c, version="1.0.0")), {}, {},
     r"demo@1\.0\.0: manifest\.json field 'version' is not newer than the committed demo@1\.1\.0"),
    ("same-version-other-content", lambda c: tar_of(make_bundle_dir(c.src, version="1.1.0", seed=7, keyring=c.kr)),
     {}, {}, r"demo@1\.1\.0: conflicting bundle"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_file_or_field_and_store_unchanged(ctx, case):
    _, build, ota_kw, install_kw, pattern = case
    bad = build(ctx)
    before = store_snapshot(ctx.home)
    with pytest.raises(Refused, match=pattern):
        make_ota(ctx.home, **ota_kw).install(bad, activate=True, **install_kw)
    assert store_snapshot(ctx.home) == before
    last = events(ctx.home, limit=1)[0]
    assert last.event == "refuse" and not last.ok and last.reason  # the refusal is in the history


def test_the_table_covers_every_bad_input_the_issue_lists():
    ids = {c[0] for c in CASES}
    for needed in ("flipped-first-byte", "flipped-middle-byte", "flipped-last-byte", "file-missing", "file-extra",
                   "duplicate-manifest-entry", "conflicting-manifest-entries", "dotdot-member", "absolute-member",
                   "symlink-member", "hardlink-member", "char-device-member", "malformed-digest",
                   "manifest-over-64KiB", "unknown-schema", "payload-longer-than-declared", "unknown-key",
                   "wrong-key", "revoked-key", "tampered-after-signing", "min-edgetui-newer",
                   "tokenizer-fingerprint-mismatch", "not-enough-disk", "downgrade"):
        assert needed in ids


def test_a_file_that_is_not_a_bundle_is_bad_input(ctx):
    junk = ctx.tmp / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(BadInput, match="junk.tar is not a bundle"):
        make_ota(ctx.home).install(junk)
    with pytest.raises(BadInput, match="not found"):
        make_ota(ctx.home).install(ctx.tmp / "nope.tar")


def test_unsigned_is_accepted_with_allow_unsigned_and_that_is_recorded(ctx):
    out = make_ota(ctx.home).install(tar_of(make_bundle_dir(ctx.src, version="1.2.0")), allow_unsigned=True)
    assert out.ok
    ev = [e for e in events(ctx.home) if e.event == "install" and e.ref == "demo@1.2.0"][0]
    assert ev.detail["unsigned"] is True and "--allow-unsigned" in ev.reason


def test_streaming_copy_stops_one_byte_past_the_declared_size(tmp_path):
    """A source that never ends is cut off as soon as it passes the declared size."""
    from edgetui.ota.install import copy_verified
    from edgetui.ota.manifest import ManifestError

    class Endless:
        read_bytes = 0

        def read(self, n):
            self.read_bytes += n
            return b"\0" * n

    src = Endless()
    with pytest.raises(ManifestError, match="payload longer than declared"):
        copy_verified(src, tmp_path / "out", FileEntry("x.bin", "0" * 64, 3 << 20), "src", lambda f, b: f.write(b))
    assert src.read_bytes == (3 << 20) + 1
