"""`edgetui bundle …`: the headless face of the OTA manager (the bundles screen is the other).

Every command takes `--json`. Exit codes: 0 ok, 1 refused or verification failed, 2 bad input.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import typer

from edgetui.config import ConfigError, paths

bundle_app = typer.Typer(no_args_is_help=True, help="Signed bundles: install, verify, activate, roll back.")

JSON = typer.Option(False, "--json", help="Print one JSON object.")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.add_typer(bundle_app, name="bundle")


def _ota():
    from edgetui.ota.manager import Ota

    return Ota(paths())


def _run(as_json: bool, fn: Callable[[], tuple[dict, str, bool]]) -> None:
    """Call `fn() -> (json_obj, text, ok)`; map our errors to exit codes with one line on stderr."""
    from edgetui.ota.errors import OtaError
    from edgetui.ota.recipe import RecipeError

    try:
        obj, text, ok = fn()
    except OtaError as e:
        _fail(as_json, str(e), e.exit_code)
    except (RecipeError, ConfigError) as e:
        _fail(as_json, str(e), 2)
    except OSError as e:  # disk full, permissions: the store was left consistent, say what failed
        _fail(as_json, f"{e.filename or 'store'}: {e.strerror or e}: the store is unchanged or recovers on "
                       "the next bundle command", 1)
    if as_json:
        typer.echo(json.dumps(obj, indent=2, default=str))
    elif text:
        typer.echo(text)
    raise typer.Exit(0 if ok else 1)


def _fail(as_json: bool, message: str, code: int) -> None:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}))
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _outcome(out) -> tuple[dict, str, bool]:
    return out.to_dict(), out.message, out.ok


def _ref_or_active(ref: str | None, active: bool) -> str | None:
    from edgetui.ota.errors import BadInput

    if ref and active:
        raise BadInput("give NAME@VERSION or --active, not both")
    return ref


def _fmt_row(r) -> str:
    mark = "*" if r.active else " "
    signer = "unsigned" if r.unsigned else (r.signer or "?")[:8]
    ver = "—" if not r.verified else ("ok" if r.verified["ok"] else "FAIL")
    smoke = "—" if not r.smoke else ("pass" if r.smoke.get("passed") else "fail")
    return (f"{mark} {r.ref:<28} {r.status:<12} {signer:<9} verified {ver:<4} smoke {smoke:<4} "
            f"{r.size / (1 << 20):8.1f} MiB  {r.installed_at or ''}")


@bundle_app.command("list")
def list_cmd(as_json: bool = JSON) -> None:
    """Installed versions (* marks the active one)."""
    from edgetui.ota.report import versions

    def go():
        rows = versions(_ota())
        return [r.to_dict() for r in rows], "\n".join(_fmt_row(r) for r in rows) or "no bundles installed", True

    _run(as_json, go)


@bundle_app.command()
def show(ref: str = typer.Argument(None, metavar="[NAME@VERSION]"),
         active: bool = typer.Option(False, "--active", help="The active bundle (the default)."),
         as_json: bool = JSON) -> None:
    """One version: its manifest, status, signer and last smoke result."""
    from edgetui.ota.report import show as show_version

    def go():
        d = show_version(_ota(), _ref_or_active(ref, active))
        v, m = d["version"], d["manifest"]
        lines = [f"{v['ref']}  {'active' if v['active'] else ''} {v['status']}", f"root     {d['root']}",
                 f"digest   {d['digest']}", f"signed   {(m.get('signature') or {}).get('key_id', 'unsigned')}",
                 f"created  {m['created']}", f"runtime  {json.dumps(m['runtime'], sort_keys=True)}",
                 f"bars     {json.dumps(m['bars'], sort_keys=True)}", f"files    {len(m['files'])}, "
                 f"{sum(f['size'] for f in m['files']) / (1 << 20):.1f} MiB"]
        if v.get("smoke"):
            lines.append(f"smoke    {'pass' if v['smoke'].get('passed') else 'fail'} "
                         f"{'; '.join(v['smoke'].get('reasons', []))}")
        return d, "\n".join(lines), True

    _run(as_json, go)


@bundle_app.command()
def verify(ref: str = typer.Argument(None, metavar="[NAME@VERSION]"),
           active: bool = typer.Option(False, "--active", help="Verify the active bundle (the default)."),
           as_json: bool = JSON) -> None:
    """Hash every file against the manifest and check the signature; exit 1 on any problem."""
    from edgetui.ota.report import verify as verify_version

    def go():
        rep = verify_version(_ota(), _ref_or_active(ref, active))
        head = (f"{rep.ref}: verifies ({rep.files} files, {rep.bytes / (1 << 20):.1f} MiB in {rep.seconds:.2f} s, "
                f"{'unsigned' if rep.unsigned else 'signed by ' + str(rep.signer)})" if rep.ok
                else f"{rep.ref}: DOES NOT VERIFY")
        return rep.to_dict(), "\n".join([head, *(f"  {p}" for p in rep.problems)]), rep.ok

    _run(as_json, go)


@bundle_app.command()
def install(file: Path = typer.Argument(..., metavar="FILE", help="Bundle archive (.tar) or directory."),
            activate: bool = typer.Option(False, "--activate", help="Activate it once installed."),
            smoke: bool = typer.Option(False, "--smoke", help="With --activate: commit only if the smoke gate "
                                                              "passes, else roll back."),
            allow_unsigned: bool = typer.Option(False, "--allow-unsigned", help="Accept an unsigned bundle "
                                                                                 "(development; recorded)."),
            as_json: bool = JSON) -> None:
    """Verify and install a bundle into the store (staged, stream-verified, moved in atomically)."""
    from edgetui.ota.errors import BadInput

    def go():
        if smoke and not activate:
            raise BadInput("--smoke needs --activate: the smoke gate runs on the activated bundle")
        return _outcome(_ota().install(file, activate=activate, smoke=smoke, allow_unsigned=allow_unsigned))

    _run(as_json, go)


@bundle_app.command()
def activate(ref: str = typer.Argument(..., metavar="NAME@VERSION"),
             smoke: bool = typer.Option(False, "--smoke", help="Commit only if the smoke gate passes."),
             as_json: bool = JSON) -> None:
    """Make an installed version active (verified, fingerprint re-checked, pointer swapped atomically)."""
    _run(as_json, lambda: _outcome(_ota().activate(ref, smoke=smoke)))


@bundle_app.command()
def rollback(ref: str = typer.Argument(None, metavar="[NAME@VERSION]"), as_json: bool = JSON) -> None:
    """Go back to the previous good version (or the kept version named)."""
    _run(as_json, lambda: _outcome(_ota().rollback(ref)))


@bundle_app.command()
def prune(keep: int = typer.Option(None, "--keep", min=0, help="Versions to keep besides the active one "
                                                                "(default: settings keep_versions, 2)."),
          as_json: bool = JSON) -> None:
    """Remove old versions, oldest first; never the active or the last good one."""
    _run(as_json, lambda: _outcome(_ota().prune(keep)))


@bundle_app.command()
def delete(ref: str = typer.Argument(..., metavar="NAME@VERSION"), as_json: bool = JSON) -> None:
    """Remove one installed version that is neither active nor the last good one."""
    _run(as_json, lambda: _outcome(_ota().delete(ref)))


@bundle_app.command("history")
def history_cmd(limit: int = typer.Option(50, "--limit", min=1), ref: str = typer.Option(None, "--ref"),
                as_json: bool = JSON) -> None:
    """Every install, activation, commit, rollback and refusal, newest first."""
    from edgetui.ota.history import events

    def go():
        evs = events(paths().ensure(), limit, ref)
        text = "\n".join(f"{e.at}  {e.event:<13} {'ok ' if e.ok else 'NO '} {e.ref or '':<26} {e.reason}"
                         for e in evs)
        return [e.to_dict() for e in evs], text or "no history yet", True

    _run(as_json, go)


@bundle_app.command()
def keygen(no_trust: bool = typer.Option(False, "--no-trust", help="Do not trust the new key on this device."),
           as_json: bool = JSON) -> None:
    """Create an Ed25519 signing key in the data dir (and trust it here)."""
    from edgetui.ota.keys import Keyring

    def go():
        kr = Keyring(paths().ensure().keys)
        kid = kr.keygen(trust=not no_trust)
        d = {"key_id": kid, "private": str(kr.private_dir / f"{kid}.pem"), "public": str(kr.public_key_path(kid)),
             "trusted": not no_trust}
        return d, f"key {kid}\n  private {d['private']} (keep it secret)\n  public  {d['public']} (hand this out)", True

    _run(as_json, go)


@bundle_app.command()
def trust(pubfile: Path = typer.Argument(..., metavar="FILE.pub"), as_json: bool = JSON) -> None:
    """Trust a public key: bundles it signed may be installed here."""
    from edgetui.ota.errors import BadInput
    from edgetui.ota.keys import Keyring

    def go():
        if not pubfile.is_file():
            raise BadInput(f"{pubfile} not found: give the .pub file printed by `edgetui bundle keygen`")
        kid = Keyring(paths().ensure().keys).trust_pem(pubfile.read_bytes())
        return {"key_id": kid}, f"trusted key {kid}", True

    _run(as_json, go)


@bundle_app.command()
def revoke(key_id: str = typer.Argument(..., metavar="KEY_ID"), as_json: bool = JSON) -> None:
    """Revoke a key: bundles it signed are refused from now on (install, activation, rollback)."""
    from edgetui.ota.keys import Keyring

    def go():
        Keyring(paths().ensure().keys).revoke(key_id)
        return {"key_id": key_id, "revoked": True}, f"revoked key {key_id}", True

    _run(as_json, go)


@bundle_app.command()
def sign(file: Path = typer.Argument(..., metavar="FILE", help="Bundle archive (.tar) or directory."),
         key: str = typer.Option(None, "--key", help="Key id (default: the newest key)."),
         out: Path = typer.Option(None, "--out", help="Write the signed archive here (default: in place)."),
         as_json: bool = JSON) -> None:
    """Sign a bundle's canonical manifest with Ed25519."""
    from edgetui.ota.build import sign_bundle

    def go():
        m = sign_bundle(paths().ensure(), file, key, out)
        target = out or file
        return ({"ref": m.ref, "key_id": m.signature["key_id"], "file": str(target)},
                f"signed {m.ref} with key {m.signature['key_id']}: {target}", True)

    _run(as_json, go)


@bundle_app.command()
def build(recipe_dir: Path = typer.Argument(..., metavar="RECIPE_DIR"),
          out: Path = typer.Option(..., "--out", help="The bundle archive to write (FILE.tar)."),
          version: str = typer.Option(None, "--version", help="Override the recipe's version."),
          key: str = typer.Option(None, "--key", help="Sign with this key (default: the newest key, if any)."),
          unsigned: bool = typer.Option(False, "--unsigned", help="Do not sign."),
          as_json: bool = JSON) -> None:
    """Build a bundle archive from a recipe (model, tokenizer fingerprint, template, corpus, bars)."""
    from edgetui.ota.build import build_archive

    def go():
        with tempfile.TemporaryDirectory(prefix="edgetui-build-") as tmp:
            m = build_archive(paths().ensure(), recipe_dir, out, Path(tmp), version=version, key=key,
                              sign=not unsigned)
        signer = (m.signature or {}).get("key_id", "unsigned")
        d = {"ref": m.ref, "file": str(out), "files": len(m.files), "bytes": m.total_size, "signed_by": signer,
             "tokenizer_sha256": m.tokenizer_sha256}
        return d, f"built {m.ref} → {out} ({len(m.files)} files, {m.total_size / (1 << 20):.1f} MiB, {signer})", True

    _run(as_json, go)
