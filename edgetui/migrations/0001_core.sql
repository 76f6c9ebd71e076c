-- Core: every generation the engine served (for history and telemetry).
CREATE TABLE IF NOT EXISTS generations (
  id INTEGER PRIMARY KEY,
  created TEXT DEFAULT CURRENT_TIMESTAMP,
  bundle TEXT,
  prompt_tokens INTEGER,
  prompt_reused INTEGER,
  prompt_ms REAL,
  ttft_ms REAL,
  decode_tokens INTEGER,
  decode_ms REAL,
  decode_tps REAL,
  source TEXT
);
