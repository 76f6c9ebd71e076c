"""Chat history and the local escalation queue (SQLite, in the one database), and redaction.

Nothing here leaves the device by itself: `EscalationQueue.export` writes a file for a supervisor with
every confidential section's text redacted (sentences, and the values only confidential sections
state, such as negotiated rates). History keeps the full answers locally (policy POL-15: questions and
answers stay on the handheld).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from edgetui.assistant.corpus import Section
from edgetui.assistant.pipeline import Answer

REDACTED = "[redacted: confidential]"
_VALUE = re.compile(r"\$\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:%|per hour|/h)")


class Redactor:
    """Removes confidential section text from anything that is exported."""

    def __init__(self, sections: list[Section] | dict[str, Section]):
        secs = list(sections.values()) if isinstance(sections, dict) else list(sections)
        self.confidential_ids = {s.id for s in secs if s.confidential}
        conf = [s for s in secs if s.confidential]
        internal_text = " ".join(s.text for s in secs if not s.confidential)
        self.sentences = sorted({sent for s in conf for sent in s.sentences if len(sent) > 12}, key=len, reverse=True)
        values = {m.group(0) for s in conf for m in _VALUE.finditer(s.text)}
        self.values = sorted((v for v in values if v not in internal_text), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for sent in self.sentences:
            if sent in text:
                text = text.replace(sent, REDACTED)
        for v in self.values:
            text = re.sub(rf"(?<![\w$]){re.escape(v)}(?![\d,])", REDACTED, text)
        return text


# -- chat history ------------------------------------------------------------------------------
class ChatHistory:
    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def new_chat(self, title: str = "") -> int:
        cur = self.db.execute("INSERT INTO chats (title) VALUES (?)", [title])
        return cur.lastrowid

    def current_chat(self) -> int:
        """The most recent chat, created when there is none."""
        row = self.db.execute("SELECT id FROM chats ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else self.new_chat()

    def chats(self, limit: int = 50) -> list[dict]:
        rows = self.db.execute(
            "SELECT c.id, c.created, c.title, count(t.id) FROM chats c LEFT JOIN chat_turns t ON t.chat_id = c.id "
            "GROUP BY c.id ORDER BY c.id DESC LIMIT ?", [limit]).fetchall()
        return [{"id": r[0], "created": r[1], "title": r[2], "turns": r[3]} for r in rows]

    def add(self, chat_id: int, answer: Answer, bundle: str = "", status: str | None = None) -> int:
        status = status or ("cancelled" if answer.cancelled else "answered")
        cur = self.db.execute(
            "INSERT INTO chat_turns (chat_id, bundle, question, answer, citations, abstained, confidential, gate, "
            "status, data) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [chat_id, bundle, answer.question, answer.answer, json.dumps(list(answer.citations)), int(answer.abstained),
             int(answer.confidential), answer.gate, status, json.dumps(answer.to_dict())])
        self.db.execute("UPDATE chats SET title = ? WHERE id = ? AND title = ''", [answer.question[:60], chat_id])
        return cur.lastrowid

    def add_error(self, chat_id: int, question: str, error: str, bundle: str = "") -> int:
        cur = self.db.execute(
            "INSERT INTO chat_turns (chat_id, bundle, question, answer, status) VALUES (?,?,?,?, 'error')",
            [chat_id, bundle, question, error])
        return cur.lastrowid

    def turns(self, chat_id: int, limit: int = 200) -> list[dict]:
        rows = self.db.execute(
            "SELECT id, created, question, answer, status, escalation_id, data FROM chat_turns WHERE chat_id = ? "
            "ORDER BY id DESC LIMIT ?", [chat_id, limit]).fetchall()
        out = []
        for r in reversed(rows):
            try:
                ans = Answer.from_dict(json.loads(r[6])) if r[6] and r[6] != "{}" else None
            except (ValueError, TypeError):
                ans = None
            out.append({"id": r[0], "created": r[1], "question": r[2], "answer": r[3], "status": r[4],
                        "escalation_id": r[5], "data": ans})
        return out

    def mark_escalated(self, turn_id: int, escalation_id: int) -> None:
        self.db.execute("UPDATE chat_turns SET escalation_id = ? WHERE id = ?", [escalation_id, turn_id])


# -- escalations -------------------------------------------------------------------------------
class EscalationQueue:
    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def add(self, answer: Answer, bundle: str, note: str = "") -> int:
        cur = self.db.execute(
            "INSERT INTO escalations (question, bundle, retrieved, reason, note) VALUES (?,?,?,?,?)",
            [answer.question, bundle, json.dumps([[i, s] for i, s in answer.retrieved]), answer.reason, note])
        return cur.lastrowid

    def list(self, status: str | None = None) -> list[dict]:
        sql = "SELECT id, created, question, bundle, retrieved, reason, note, status, exported_at FROM escalations"
        args: list = []
        if status:
            sql += " WHERE status = ?"
            args.append(status)
        rows = self.db.execute(sql + " ORDER BY id", args).fetchall()
        return [{"id": r[0], "created": r[1], "question": r[2], "bundle": r[3], "retrieved": json.loads(r[4]),
                 "reason": r[5], "note": r[6], "status": r[7], "exported_at": r[8]} for r in rows]

    def export_records(self, redactor: Redactor, sections: dict[str, Section],
                       include_exported: bool = False) -> list[dict]:
        """Escalations ready for a supervisor: confidential text redacted, retrieved sections by id and
        title (titles of confidential sections are replaced by their marker)."""
        out = []
        for e in self.list(None if include_exported else "open"):
            retrieved = []
            for sid, score in e["retrieved"]:
                s = sections.get(sid)
                conf = s is not None and s.confidential
                retrieved.append({"id": sid, "score": score, "confidential": conf,
                                  "title": "(confidential section)" if conf else (s.title if s else "")})
            out.append({"id": e["id"], "created": e["created"], "bundle": e["bundle"],
                        "question": redactor(e["question"]), "reason": redactor(e["reason"]),
                        "note": redactor(e["note"]), "retrieved": retrieved, "status": e["status"]})
        return out

    def export(self, out_path: Path, redactor: Redactor, sections: dict[str, Section],
               include_exported: bool = False) -> tuple[Path, int]:
        records = self.export_records(redactor, sections, include_exported)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        doc = {"kind": "edgetui.escalations/1", "exported_at": now, "count": len(records), "escalations": records,
               "note": "Confidential policy text is redacted. Queued notes are not calls: phone for Severity 1 and 2."}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(out_path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(out_path)
        ids = [r["id"] for r in records]
        if ids:
            marks = ",".join("?" * len(ids))
            self.db.execute(f"UPDATE escalations SET status = 'exported', exported_at = ? WHERE id IN ({marks})",
                            [now, *ids])
        return out_path, len(records)
