-- OTA: every install, activation, commit, rollback, prune and refusal, with its reason.
CREATE TABLE IF NOT EXISTS ota_history (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  event TEXT NOT NULL,          -- install | activate | commit | rollback | auto-rollback | refuse | prune | delete | verify
  ref TEXT,                     -- NAME@VERSION (or the file that was refused)
  from_ref TEXT,                -- the version active before, for activations and rollbacks
  ok INTEGER NOT NULL DEFAULT 1,
  reason TEXT,
  detail TEXT                   -- JSON: signer, unsigned, smoke result, ...
);
CREATE INDEX IF NOT EXISTS ota_history_ref ON ota_history (ref);
