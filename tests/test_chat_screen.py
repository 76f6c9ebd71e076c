"""The chat screen: Pilot tests with the real model, bad input, and snapshots at 80x24."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from screen_host import ScreenHost
from textual.widgets import Input, Static

from edgetui.assistant.pipeline import Answer
from edgetui.assistant.store import ChatHistory, EscalationQueue
from edgetui.db import open_db
from edgetui.session import Session
from screens.chat import ChatScreen, CitationButton, SectionView, Turn

REPO = Path(__file__).resolve().parent.parent


class ChatHost(ScreenHost):
    def __init__(self, ctx: Session):
        super().__init__(ctx, ChatScreen, show_bundle=True)

    def on_unmount(self) -> None:
        self.session.close()


@pytest.fixture
def ctx(home, bundle) -> Session:
    """A fresh data dir (its own database and history) on the session's built bundle."""
    return Session(home, bundle)


async def until(pilot, predicate, timeout: float = 240.0) -> None:
    t = time.monotonic()
    while not predicate():
        if time.monotonic() - t > timeout:
            raise AssertionError("timed out waiting for the chat screen")
        await pilot.pause(0.1)


def turns(app) -> list[Turn]:
    return list(app.screen.query(Turn))


async def ask(pilot, text: str) -> Turn:
    app = pilot.app
    n = len(turns(app))
    app.screen.query_one("#prompt", Input).value = text
    await pilot.press("enter")
    await until(pilot, lambda: len(turns(app)) > n)
    return turns(app)[-1]


def done(turn: Turn):
    return lambda: turn.answer is not None or turn.error is not None


# -- with the real model ---------------------------------------------------------------------------
@pytest.mark.model
async def test_question_streams_a_cited_answer_and_a_citation_opens(ctx):
    app = ChatHost(ctx)
    async with app.opened() as pilot:
        turn = await ask(pilot, "which bearing set goes in a raw water pump?")
        await until(pilot, lambda: bool(turn._stream) or turn.answer is not None)
        await until(pilot, done(turn))
        a = turn.answer
        assert a is not None and not a.abstained and "POL-03#5" in a.citations
        assert set(a.citations) <= {i for i, _ in a.retrieved}
        assert "TTFT" in str(app.screen.query_one("#status", Static).render())
        buttons = list(turn.query(CitationButton))
        assert [b.cid for b in buttons] == list(a.citations)
        await pilot.press("tab")  # input → first citation
        assert isinstance(app.focused, CitationButton)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SectionView)
        assert "BR-6310" in str(app.screen.query_one("#section-text", Static).render())
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen)
    rows = ChatHistory(open_db(p=ctx.paths)).turns(ChatHistory(open_db(p=ctx.paths)).current_chat())
    assert rows[-1]["data"].citations == a.citations


@pytest.mark.model
async def test_escape_cancels_mid_stream(ctx):
    app = ChatHost(ctx)
    async with app.opened() as pilot:
        turn = await ask(pilot, "how long is a hot work permit good for")
        await pilot.press("escape")
        await until(pilot, done(turn))
        assert turn.answer.cancelled and turn.status == "cancelled"
        assert str(app.screen.query_one("#status", Static).render()) == "cancelled"
        # the screen still answers afterwards
        turn2 = await ask(pilot, "how long is a hot work permit good for")
        await until(pilot, done(turn2))
        assert not turn2.answer.cancelled and "POL-06#2" in turn2.answer.citations
    hist = ChatHistory(open_db(p=ctx.paths))
    assert [t["status"] for t in hist.turns(hist.current_chat())] == ["cancelled", "answered"]


@pytest.mark.model
async def test_out_of_corpus_abstains_escalates_and_history_survives_restart(ctx, home, bundle):
    app = ChatHost(ctx)
    async with app.opened() as pilot:
        turn = await ask(pilot, "What is the warranty period of the office coffee machine?")
        await until(pilot, done(turn))
        assert turn.answer.abstained and turn.answer.citations == ()
        assert "NOT COVERED" in str(turn.query_one(".markers", Static).render())
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert turn.escalation_id is not None
        assert "ESCALATED" in str(turn.query_one(".markers", Static).render())
    assert len(EscalationQueue(open_db(p=home)).list()) == 1
    # restart: a new app on the same data dir shows the same history
    app2 = ChatHost(Session(home, bundle))
    ChatScreen.WARM = False
    try:
        async with app2.opened() as pilot:
            t = turns(app2)
            assert [x.question for x in t] == ["What is the warranty period of the office coffee machine?"]
            assert t[0].answer.abstained and t[0].escalation_id is not None
            await pilot.press("ctrl+n")  # new chat: empty log, old chat kept in the database
            await pilot.pause()
            assert turns(app2) == []
    finally:
        ChatScreen.WARM = True
    assert len(ChatHistory(open_db(p=home)).chats()) == 2


# -- bad input (gate only, no model) ----------------------------------------------------------------
async def test_bad_input_gets_a_clear_message_and_keeps_history(ctx, monkeypatch):
    monkeypatch.setattr(ChatScreen, "WARM", False)
    app = ChatHost(ctx)
    bad = ["   ", "x" * 20_000, "\x00\x01\x02\x7f\x1b[31m",
           "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\xf4\x08\x06",
           "¿Qué kit de sello uso para la bomba?", "hello"]
    async with app.opened() as pilot:
        for q in bad:
            turn = await ask(pilot, q)
            await until(pilot, done(turn), timeout=30)
            assert turn.answer.gate is not None and turn.answer.answer
            assert "NOTICE" in str(turn.query_one(".markers", Static).render())
        assert len(turns(app)) == len(bad)
        long_q = turns(app)[1].query_one(".question", Static)
        assert len(str(long_q.render())) < 400  # a paste is shown shortened
    hist = ChatHistory(open_db(p=ctx.paths))
    rules = [t["data"].gate for t in hist.turns(hist.current_chat())]
    assert rules == ["empty", "too_long", "unreadable", "unreadable", "language", "small_talk"]


# -- snapshots (history rendered from fixed answers: deterministic) ---------------------------------
STATS = {"gate_ms": 0.1, "retrieval_ms": 0.6, "prompt_tokens": 560, "prompt_reused": 336, "prompt_recomputed": 224,
         "ttft_ms": 820.0, "decode_tps": 41.5, "decode_tokens": 12, "total_ms": 1110.0}


def _seed(ctx, answers: list[Answer], escalate: bool = False) -> None:
    hist = ChatHistory(ctx.db)
    chat = hist.current_chat()
    for a in answers:
        tid = hist.add(chat, a, ctx.bundle.ref)
        if escalate and a.abstained:
            hist.mark_escalated(tid, EscalationQueue(ctx.db).add(a, ctx.bundle.ref))


def test_snapshot_finished_answer(ctx, monkeypatch, snap_compare):
    monkeypatch.setattr(ChatScreen, "WARM", False)
    sec = "Raw water pumps P-201 to P-214 use seal kit SK-2240."
    _seed(ctx, [Answer("p-201 seal is shot, which kit?", f'Seal kit SK-2240.\n"{sec}" [POL-02#4]', ("POL-02#4",),
                       False, False, (("POL-02#4", 13.7), ("POL-02#1", 7.7), ("POL-09#1", 6.3)), STATS,
                       lead="Seal kit SK-2240.", quotes=(("POL-02#4", sec),))])
    assert snap_compare(ChatHost(ctx), terminal_size=(80, 24))


def test_snapshot_abstention(ctx, monkeypatch, snap_compare):
    monkeypatch.setattr(ChatScreen, "WARM", False)
    text = ("The policy documents don't cover this.\nClosest sections: POL-02#4 (Repair parts), "
            "POL-02#1 (Scope), POL-12#1 (Everywhere on site).")
    _seed(ctx, [Answer("What torque goes on the impeller bolts?", text, (), True, False,
                       (("POL-02#4", 7.9), ("POL-02#1", 5.5), ("POL-12#1", 5.1)), {**STATS, "ttft_ms": None},
                       escalation_offered=True, reason="no policy mentions: torque, impeller")], escalate=True)
    assert snap_compare(ChatHost(ctx), terminal_size=(80, 24))


def test_snapshot_confidential_answer_modal(ctx, monkeypatch, snap_compare):
    monkeypatch.setattr(ChatScreen, "WARM", False)
    sent = "A technician may approve vendor work up to $2,500 per job."
    _seed(ctx, [Answer("how much vendor work can i sign off", f'"{sent}" [POL-07#7]', ("POL-07#7",), False, True,
                       (("POL-07#7", 9.0), ("POL-07#2", 6.6), ("POL-16#4", 3.9)), STATS, quotes=(("POL-07#7", sent),))])

    async def open_citation(pilot):
        await pilot.press("tab", "enter")
        await asyncio.sleep(0.1)

    assert snap_compare(ChatHost(ctx), terminal_size=(80, 24), run_before=open_citation)


# -- the quoted policy comes before the model ----------------------------------------------------------
class HeldEngine:
    """An engine whose lead waits for `release`: what the screen shows before the model has answered."""

    name, n_ctx = "held", 2048

    def __init__(self, reply: str):
        import threading

        self.reply, self.release = reply, threading.Event()

    def generate(self, prompt, params):
        from edgetui.engine.base import Stats, Token

        eng = self

        class G:
            stats = None

            def __iter__(self):
                t0 = time.monotonic()
                eng.release.wait(60)
                yield Token(eng.reply, time.monotonic())
                self.stats = Stats(prompt_tokens=50, prompt_reused=40, prompt_ms=5.0, ttft_ms=5.0, decode_tokens=2,
                                   decode_ms=2.0, finish="stop", start=t0)

            def cancel(self):
                eng.release.set()

        return G()

    def close(self):
        self.release.set()


async def test_quotes_show_before_the_model_has_answered_then_the_validated_lead(ctx, monkeypatch):
    from edgetui.assistant.pipeline import Assistant

    monkeypatch.setattr(ChatScreen, "WARM", False)
    eng = HeldEngine("8 hours.")
    ctx.assistant = Assistant(ctx.bundle, eng)
    sent = "For a pump rated below 50 kW, the limit is 8 hours."
    app = ChatHost(ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        turn = await ask(pilot, "stream leak on a 30 kW pump, how long to tell the reliability engineer")
        shown = lambda: str(turn.query_one(".answer", Static).render())  # noqa: E731
        await until(pilot, lambda: "POL-02#3" in shown(), timeout=30)
        assert turn.answer is None and "checking against the policy" in shown()  # the model has not answered
        eng.release.set()
        await until(pilot, done(turn), timeout=30)
        final = str(turn.query_one(".answer", Static).render())
        assert final.startswith("8 hours.") and "POL-02#3" in final and sent in turn.answer.answer
        assert "first" in str(app.screen.query_one("#status", Static).render())
