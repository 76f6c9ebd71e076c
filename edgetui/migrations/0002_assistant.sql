-- Assistant: chat history (conversations and their turns) and the local escalation queue.
CREATE TABLE IF NOT EXISTS chats (
  id INTEGER PRIMARY KEY,
  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
  title TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS chat_turns (
  id INTEGER PRIMARY KEY,
  chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
  bundle TEXT NOT NULL DEFAULT '',
  question TEXT NOT NULL,
  answer TEXT NOT NULL DEFAULT '',
  citations TEXT NOT NULL DEFAULT '[]',      -- JSON list of POL-NN#S ids
  abstained INTEGER NOT NULL DEFAULT 0,
  confidential INTEGER NOT NULL DEFAULT 0,
  gate TEXT,
  status TEXT NOT NULL DEFAULT 'answered',   -- answered | cancelled | error
  escalation_id INTEGER,
  data TEXT NOT NULL DEFAULT '{}'            -- the full Answer as JSON (retrieved, stats, …)
);
CREATE INDEX IF NOT EXISTS chat_turns_chat ON chat_turns(chat_id, id);

CREATE TABLE IF NOT EXISTS escalations (
  id INTEGER PRIMARY KEY,
  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
  question TEXT NOT NULL,
  bundle TEXT NOT NULL,                      -- name@version the question was asked against
  retrieved TEXT NOT NULL DEFAULT '[]',      -- JSON list of [id, score]
  reason TEXT NOT NULL DEFAULT '',           -- why the assistant abstained
  note TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'open',       -- open | exported
  exported_at TEXT
);
