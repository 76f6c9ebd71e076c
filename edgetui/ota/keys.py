"""Ed25519 signing keys, trusted public keys and revocation (the `cryptography` package does the math).

Layout under `<data dir>/keys/`: `private/<key id>.pem` (PKCS#8, mode 0600), `trusted/<key id>.pub`
(SubjectPublicKeyInfo PEM) and `revoked` (one key id a line). A key id is the first 16 hex digits
of the sha256 of the raw 32-byte public key. The signature covers `Manifest.canonical_bytes()`,
which lists every payload file's sha256, so it covers the whole bundle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgetui.ota.errors import BadInput, Refused
from edgetui.ota.manifest import Manifest, ManifestError

ALG = "ed25519"


def key_id(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _pub_pem(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class SignatureCheck:
    signer: str | None  # key id, None when unsigned
    unsigned: bool


@dataclass(frozen=True)
class Keyring:
    root: Path

    @property
    def private_dir(self) -> Path:
        return self.root / "private"

    @property
    def trusted_dir(self) -> Path:
        return self.root / "trusted"

    @property
    def revoked_file(self) -> Path:
        return self.root / "revoked"

    # -- keys --------------------------------------------------------------------------------
    def keygen(self, trust: bool = True) -> str:
        """Create a signing key; trust its public half on this device unless `trust=False`."""
        priv = Ed25519PrivateKey.generate()
        kid = key_id(priv.public_key())
        self.private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        fd = os.open(self.private_dir / f"{kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        self.public_key_path(kid).parent.mkdir(parents=True, exist_ok=True)
        (self.root / f"{kid}.pub").write_bytes(_pub_pem(priv.public_key()))  # the file to hand out
        if trust:
            self.trust_pem(_pub_pem(priv.public_key()))
        return kid

    def public_key_path(self, kid: str) -> Path:
        return self.root / f"{kid}.pub"

    def private_keys(self) -> list[str]:
        if not self.private_dir.is_dir():
            return []
        files = sorted(self.private_dir.glob("*.pem"), key=lambda p: p.stat().st_mtime)
        return [p.stem for p in files]

    def load_private(self, kid: str | None = None) -> tuple[str, Ed25519PrivateKey]:
        """The named signing key, or the newest one when `kid` is None."""
        keys = self.private_keys()
        if not keys:
            raise BadInput(f"no signing key in {self.private_dir}: run `edgetui bundle keygen`")
        kid = kid or keys[-1]
        p = self.private_dir / f"{kid}.pem"
        if not p.is_file():
            raise BadInput(f"no signing key {kid} in {self.private_dir}: see `edgetui bundle keygen`")
        priv = serialization.load_pem_private_key(p.read_bytes(), password=None)
        if not isinstance(priv, Ed25519PrivateKey):
            raise BadInput(f"{p} is not an Ed25519 key")
        return kid, priv

    def trust_pem(self, pem: bytes) -> str:
        """Add a public key (PEM) to the trusted set; returns its key id."""
        try:
            pub = serialization.load_pem_public_key(pem)
        except ValueError as e:
            raise BadInput(f"not a PEM public key ({e})") from e
        if not isinstance(pub, Ed25519PublicKey):
            raise BadInput("only Ed25519 public keys can be trusted")
        kid = key_id(pub)
        self.trusted_dir.mkdir(parents=True, exist_ok=True)
        (self.trusted_dir / f"{kid}.pub").write_bytes(_pub_pem(pub))
        return kid

    def trusted(self) -> dict[str, Ed25519PublicKey]:
        out = {}
        if self.trusted_dir.is_dir():
            for p in sorted(self.trusted_dir.glob("*.pub")):
                try:
                    pub = serialization.load_pem_public_key(p.read_bytes())
                except ValueError:
                    continue
                if isinstance(pub, Ed25519PublicKey) and key_id(pub) == p.stem:
                    out[p.stem] = pub
        return out

    def revoked(self) -> set[str]:
        if not self.revoked_file.is_file():
            return set()
        lines = (ln.split("#", 1)[0].strip() for ln in self.revoked_file.read_text().splitlines())
        return {ln for ln in lines if ln}

    def revoke(self, kid: str) -> None:
        if kid in self.revoked():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with self.revoked_file.open("a") as f:
            f.write(kid + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- signatures --------------------------------------------------------------------------
    def sign(self, manifest: Manifest, kid: str | None = None) -> Manifest:
        kid, priv = self.load_private(kid)
        value = base64.b64encode(priv.sign(manifest.canonical_bytes())).decode("ascii")
        return replace(manifest, signature={"alg": ALG, "key_id": kid, "value": value})

    def check(self, manifest: Manifest, allow_unsigned: bool = False) -> SignatureCheck:
        """Who signed this manifest; raise Refused (naming the field) unless a trusted key did."""
        sig = manifest.signature
        if not sig:
            if allow_unsigned:
                return SignatureCheck(None, True)
            raise Refused(f"{manifest.ref}: manifest.json field 'signature' is missing (unsigned bundle): sign it "
                          "with `edgetui bundle sign`, or pass --allow-unsigned for development")
        if sig.get("alg") != ALG or not isinstance(sig.get("key_id"), str) or not isinstance(sig.get("value"), str):
            raise ManifestError(f"{manifest.ref}: manifest.json field 'signature' is malformed "
                                f"(needs alg '{ALG}', key_id and value)")
        kid = sig["key_id"]
        if kid in self.revoked():
            raise Refused(f"{manifest.ref}: signature.key_id {kid} is a revoked key: refuse this bundle")
        pub = self.trusted().get(kid)
        if pub is None:
            raise Refused(f"{manifest.ref}: signature.key_id {kid} is an unknown key: trust its public key "
                          "with `edgetui bundle trust FILE.pub` if you expect it")
        try:
            value = base64.b64decode(sig["value"], validate=True)
            pub.verify(value, manifest.canonical_bytes())
        except (InvalidSignature, binascii.Error, ValueError) as e:
            raise Refused(f"{manifest.ref}: manifest.json field 'signature' does not verify with key {kid} "
                          "(manifest changed after signing, or signed with another key)") from e
        return SignatureCheck(kid, False)
