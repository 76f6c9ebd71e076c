-- Evals: one row per run with everything that makes two runs comparable, one row per golden case.
-- A result row is written once and never changed; a completed run is frozen (triggers below).
CREATE TABLE IF NOT EXISTS eval_runs (
  id INTEGER PRIMARY KEY,
  started REAL NOT NULL,                   -- wall-clock epoch seconds
  ended REAL,
  status TEXT NOT NULL DEFAULT 'running',  -- running | interrupted | complete
  pid INTEGER,                             -- the process running it (a dead pid means resumable)
  host TEXT,
  key TEXT NOT NULL,                       -- sha256 of the inputs below: equal key = same experiment
  bundle_name TEXT NOT NULL,
  bundle_version TEXT NOT NULL,
  bundle_digest TEXT NOT NULL,             -- sha256 of the canonical bundle manifest
  golden_name TEXT NOT NULL,
  golden_version TEXT NOT NULL,
  golden_sha256 TEXT NOT NULL,
  golden_path TEXT,
  subset TEXT NOT NULL,                    -- full | smoke
  case_ids TEXT NOT NULL,                  -- JSON list, run order
  template_sha256 TEXT,
  runtime TEXT,                            -- JSON: the bundle's runtime flags
  bars TEXT,                               -- JSON: the bundle's bars at run time
  edgetui_version TEXT,
  machine TEXT,                            -- JSON: host, CPU, cores, python, llama-cpp-python
  n_cases INTEGER NOT NULL,
  n_done INTEGER NOT NULL DEFAULT 0,
  n_passed INTEGER NOT NULL DEFAULT 0,
  quality REAL,
  p50_ttft_ms REAL,
  p95_ttft_ms REAL,
  median_tps REAL,
  min_tps REAL,
  wall_s REAL,                             -- runner wall time over all sessions of this run
  gen_s REAL,                              -- sum of engine generation times
  load_s REAL,                             -- engine start before the first case (not in wall_s)
  slices TEXT,                             -- JSON per-slice table
  baseline_id INTEGER,                     -- the run compared with (not a foreign key: runs are frozen)
  gate TEXT,                               -- JSON gate verdict
  passed INTEGER                           -- gate verdict: 1 pass, 0 fail, NULL while running
);
CREATE INDEX IF NOT EXISTS eval_runs_lookup ON eval_runs(golden_sha256, bundle_name, bundle_version, status);
CREATE INDEX IF NOT EXISTS eval_runs_key ON eval_runs(key, status);

CREATE TABLE IF NOT EXISTS eval_results (
  run_id INTEGER NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  case_id TEXT NOT NULL,
  slice TEXT NOT NULL,
  passed INTEGER NOT NULL,
  failed TEXT,                             -- JSON list of failed checks
  reasons TEXT,                            -- JSON list of reasons in words
  precision REAL,
  recall REAL,
  ttft_ms REAL,
  decode_tps REAL,
  decode_tokens INTEGER,
  gen_ms REAL,
  total_ms REAL,
  error TEXT,
  data TEXT NOT NULL,                      -- JSON: answer, citations, retrieved, stats, expectations
  created REAL NOT NULL,
  PRIMARY KEY (run_id, case_id)
);

CREATE TRIGGER IF NOT EXISTS eval_results_frozen BEFORE UPDATE ON eval_results
BEGIN
  SELECT RAISE(ABORT, 'eval results are never changed after the fact');
END;

CREATE TRIGGER IF NOT EXISTS eval_runs_frozen BEFORE UPDATE ON eval_runs WHEN OLD.status = 'complete'
BEGIN
  SELECT RAISE(ABORT, 'a completed eval run is never changed after the fact');
END;
