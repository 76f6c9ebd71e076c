"""CLI commands of the assistant part (registered on the root app by edgetui/cli.py).

- `edgetui ask "question" [--json] [--escalate]`: the answer and its citations; with `--json` one object
  (`answer`, `citations`, `abstained`, `confidential`, `retrieved`, `stats`, …; `stats.first_token_ms` is
  question → first characters on screen (the quoted policy, shown before the model runs), `answer_ms` →
  the complete validated answer, `ttft_ms` the model's first token, `cache_hit` whether a saved KV state
  served the prompt: always false until the per-section state cache lands). On a terminal the quotes
  print at once and the model's lead follows. Exit 0 answered or
  abstained, 2 bad input (engine or bundle problems), 1 the engine failed mid-answer.
- `edgetui escalations list [--all] [--json]` and `edgetui escalations export [--out FILE] [--all]`:
  the local escalation queue, exported for a supervisor with confidential section text redacted.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from edgetui.assistant import gate as gate_rules
from edgetui.cli_errors import BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, fail

log = logging.getLogger(__name__)
# numeric timings and counts from Answer.stats that may be logged; nothing textual
LOGGED_STATS = ("first_token_ms", "answer_ms", "gate_ms", "retrieval_ms", "ttft_ms", "decode_tps", "prompt_tokens",
                "prompt_recomputed", "decode_tokens")

CLI_BAD_INPUT = {
    "empty": "the question is empty: pass it in quotes, e.g. edgetui ask \"which seal kit fits P-201?\"",
    "too_long": "the question is {n} characters, over the {limit}-character limit: ask about one thing at a time",
    "unreadable": "the question is not readable text (binary data?): type it in plain words",
}

escalations_app = typer.Typer(no_args_is_help=True, help="The local escalation queue (questions the policies "
                                                           "don't answer), for a supervisor.")


def _errors() -> tuple[type[Exception], ...]:
    from edgetui.assistant.corpus import CorpusError
    from edgetui.assistant.prompt import TemplateError

    return CorpusError, TemplateError, ValueError


ASSISTANT_ERRORS = _errors()


def register(app: typer.Typer) -> None:
    """Add this part's commands to the root app."""
    app.command("ask")(ask)
    app.add_typer(escalations_app, name="escalations")


def ask(
    question: str = typer.Argument(..., help="The question, in quotes."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (answer, citations, stats …)."),
    escalate: bool = typer.Option(False, "--escalate", help="Queue the question for a supervisor if not answered."),
    mode: str | None = typer.Option(None, "--mode", help="Answer mode: quote, model_quote or free "
                                    "(default: the bundle's)."),
) -> None:
    """Answer a policy question from the active bundle, citing the sections used."""
    from edgetui.assistant.pipeline import MODES, Assistant
    from edgetui.assistant.store import EscalationQueue
    from edgetui.engine.base import EngineCrashed
    from edgetui.session import Session

    if mode is not None and mode not in MODES:
        fail(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    bad = gate_rules.check(question)
    if bad is not None and bad.rule in CLI_BAD_INPUT:  # the TUI answers these kindly; a script gets exit 2
        fail(CLI_BAD_INPUT[bad.rule].format(n=len(question), limit=gate_rules.MAX_QUESTION_CHARS))
    try:
        session = Session.open()  # the active bundle (the first run builds the default one)
    except BAD_INPUT as e:
        fail(str(e))
    bundle = session.bundle
    streamed: list[str] = []
    quoted: list[tuple[str, str]] = []
    live = not as_json and sys.stdout.isatty()

    def show(text: str) -> None:  # the model's draft lead, on a line of its own below the quotes
        if live:
            streamed.append(text)
            sys.stdout.write(text)
            sys.stdout.flush()

    def show_quotes(pairs: list[tuple[str, str]]) -> None:  # final and validated: shown before the model runs
        if live:
            quoted.extend(pairs)
            sys.stdout.write("".join(f'"{sent}" [{sid}]\n' for sid, sent in pairs))
            sys.stdout.flush()

    try:
        assistant = session.assistant if mode is None else Assistant(bundle, session.engine, mode=mode)
        ans = assistant.ask(question, on_token=show, on_quotes=show_quotes)
    except EngineCrashed as e:
        log.warning("ask: the engine crashed mid-answer: %s", e)
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_FAILED) from e
    except KeyboardInterrupt:
        log.info("ask: interrupted")
        typer.echo("\ninterrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (*BAD_INPUT, *ASSISTANT_ERRORS) as e:
        fail(str(e))
    finally:
        session.close_engine()  # the answer is complete (or failed): the model's memory goes back
    if streamed:  # the streamed lead is replaced by the validated answer below
        sys.stdout.write("\r\033[K" if "\n" not in "".join(streamed) else "\n")
    db = session.db
    escalation_id = None
    if escalate and ans.abstained and ans.escalation_offered:
        escalation_id = EscalationQueue(db).add(ans, bundle.ref)
    _log_outcome(ans, bundle.ref, escalation_id)
    if as_json:
        d = {"question": ans.question, "answer": ans.answer, "citations": list(ans.citations),
             "abstained": ans.abstained, "confidential": ans.confidential,
             "retrieved": [{"id": i, "score": s} for i, s in ans.retrieved], "stats": ans.stats, "gate": ans.gate,
             "escalation_offered": ans.escalation_offered, "escalation_id": escalation_id, "reason": ans.reason,
             "bundle": bundle.ref}
        typer.echo(json.dumps(d, ensure_ascii=False))
        return
    if quoted and list(ans.quotes) == quoted:  # the quotes are on screen already: add the validated lead
        if ans.lead:
            typer.echo(ans.lead)
    else:
        typer.echo(ans.answer)
    if ans.confidential:
        typer.echo("CONFIDENTIAL: this answer draws on a confidential policy section; do not share it.")
    for cid in ans.citations:
        s = assistant.section(cid)
        typer.echo(f"  [{cid}] {s.doc_title} — {s.title}" if s else f"  [{cid}]")
    if ans.abstained and ans.escalation_offered:
        if escalation_id is not None:
            typer.echo(f"Escalation #{escalation_id} queued for a supervisor (edgetui escalations list).")
        else:
            typer.echo("Not covered: add --escalate to queue it for a supervisor.")
    st = ans.stats
    if st.get("ttft_ms") is not None:
        typer.echo(f"[first {st['first_token_ms']:.0f} ms · answer {st['answer_ms']:.0f} ms · TTFT "
                   f"{st['ttft_ms']:.0f} ms · {st['prompt_recomputed']}/{st['prompt_tokens']} prompt tokens "
                   f"recomputed · {st.get('decode_tps') or 0:.1f} tok/s]", err=True)


def _log_outcome(ans, bundle_ref: str, escalation_id: int | None) -> None:
    """One line of metadata about an answer: never the question or the answer (they can be confidential)."""
    stats = {k: ans.stats[k] for k in LOGGED_STATS if isinstance(ans.stats.get(k), int | float)}
    log.info("ask on %s: abstained=%s confidential=%s citations=%s retrieved=%s escalation=%s %s", bundle_ref,
             ans.abstained, ans.confidential, ",".join(ans.citations) or "-",
             ",".join(i for i, _ in ans.retrieved) or "-", escalation_id,
             " ".join(f"{k}={v}" for k, v in stats.items()))


@escalations_app.command("list")
def escalations_list(
    show_all: bool = typer.Option(False, "--all", help="Include escalations already exported."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (confidential text redacted)."),
) -> None:
    """List queued escalations (confidential text redacted)."""
    from edgetui.assistant.store import EscalationQueue
    from edgetui.db import open_db

    try:
        queue, redactor, sections = EscalationQueue(open_db()), *_redaction()
    except (*BAD_INPUT, *ASSISTANT_ERRORS) as e:
        fail(str(e))
    rows = queue.export_records(redactor, sections, include_exported=show_all)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        typer.echo("No escalations queued." if not show_all else "No escalations.")
        return
    for r in rows:
        ids = ", ".join(x["id"] for x in r["retrieved"]) or "none"
        typer.echo(f"#{r['id']:<4} {r['created']}  {r['status']:<8} {r['bundle']}  {r['question']}")
        typer.echo(f"      closest: {ids}; {r['reason']}")


@escalations_app.command("export")
def escalations_export(
    out: Path | None = typer.Option(None, "--out", "-o", help="Output JSON file (default: exports/ in the data dir)."),
    show_all: bool = typer.Option(False, "--all", help="Include escalations already exported."),
) -> None:
    """Write queued escalations to a JSON file for a supervisor (confidential text redacted)."""
    from edgetui.assistant.store import EscalationQueue
    from edgetui.config import paths
    from edgetui.db import open_db

    try:
        p = paths().ensure()
        queue, redactor, sections = EscalationQueue(open_db(p=p)), *_redaction()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = out or p.exports / f"escalations-{stamp}.json"
        path, n = queue.export(target, redactor, sections, include_exported=show_all)
    except (*BAD_INPUT, *ASSISTANT_ERRORS) as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write {out} ({e.strerror}): choose a writable --out path")
    typer.echo(f"{n} escalation(s) written to {path}")


def _redaction():
    """(Redactor, sections by id) from the active bundle's corpus."""
    from edgetui.assistant.corpus import load_corpus
    from edgetui.assistant.store import Redactor
    from edgetui.session import active_bundle

    sections = {s.id: s for s in load_corpus(active_bundle().corpus_dir)}
    return Redactor(sections), sections
