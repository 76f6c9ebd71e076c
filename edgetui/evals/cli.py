"""CLI commands of the evals part (registered on the root app by edgetui/cli.py).

`edgetui eval [--golden PATH] [--bundle NAME@VERSION ...] [--smoke] [--gate] [--json] [--junit FILE]`
exits 0 when it ran (and, with --gate, every bundle passed), 1 when a gate failed, 2 on bad input
(golden set, bundle reference or bundle) with nothing stored, 130 when interrupted (rerun to resume).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer

from edgetui.cli_errors import BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, fail

log = logging.getLogger(__name__)


def _progress(run, result, done: int, total: int) -> None:
    ttft = "" if result.ttft_ms is None else f" {result.ttft_ms:.0f} ms"
    mark = "pass" if result.passed else "FAIL"
    sys.stderr.write(f"[{done}/{total}] {run.bundle_ref} {result.case_id:<9} {mark}{ttft}\n")
    sys.stderr.flush()


def _parse_ref(ref: str) -> tuple[str, str]:
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        raise ValueError(f"--bundle {ref!r} is not NAME@VERSION (e.g. field-policy@1.0.0): see `edgetui bundle list`")
    return name, version


def eval_command(
    golden: Path | None = typer.Option(None, "--golden", help="Golden-set JSONL (default: the bundle's newest)."),
    bundles: list[str] = typer.Option([], "--bundle", help="NAME@VERSION to evaluate; repeat for a matrix."),
    smoke: bool = typer.Option(False, "--smoke", help="Only the fixed smoke subset (~12 cases, every slice)."),
    gate: bool = typer.Option(False, "--gate", help="Exit 1 when a bundle fails its bars or regresses."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML (one testcase per case)."),
    baseline: str | None = typer.Option(None, "--baseline", help="NAME@VERSION to compare with "
                                        "(default: the previously active bundle)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start a new run instead of resuming an unfinished one."),
) -> None:
    """Run the golden set on bundles, score, compare with the baseline and gate the release."""
    from edgetui.evals import report
    from edgetui.evals.golden import GoldenError, default_golden_path, load_golden
    from edgetui.evals.runner import evaluate_bundle
    from edgetui.session import Session

    try:
        if baseline:
            _parse_ref(baseline)
        refs = [_parse_ref(b) for b in bundles]
        session = Session()
        targets = [session.store.get(n, v) for n, v in refs] if refs else [session.bundle]
        for b in targets:
            if not b.model_path.is_file():
                raise ValueError(f"bundle {b.ref} has no model file {b.model_path}: reinstall it")
        golden_path = golden or default_golden_path(targets[0].name)
        load_golden(golden_path)  # validate before anything is stored
    except (GoldenError, ValueError, *BAD_INPUT) as e:
        fail(str(e))
    outs = []
    try:
        for b in targets:  # each bundle gets its own engine child; results go through the session's db
            outs.append(evaluate_bundle(b, session.paths, golden_path=golden_path, smoke=smoke, baseline_ref=baseline,
                                        fresh=fresh, on_result=_progress, db=session.db))
    except KeyboardInterrupt:
        typer.echo("interrupted: finished cases are stored; run the same command again to resume", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BAD_INPUT as e:
        fail(f"{e}")
    finally:
        session.close()
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_bytes(report.junit(outs))
    all_passed = all(o.gate is not None and o.gate.passed for o in outs)
    if as_json:
        typer.echo(json.dumps({"gate_passed": all_passed, "runs": [report.outcome_json(o) for o in outs]},
                              indent=2, default=str))
    else:
        for o in outs:
            typer.echo(report.table(o))
            typer.echo("")
        if len(outs) > 1:
            typer.echo(report.matrix(outs))
    log.info("eval: %d run(s), %s", len(outs), "all gates passed" if all_passed else "a gate failed")
    raise typer.Exit(EXIT_FAILED if gate and not all_passed else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.command("eval")(eval_command)
