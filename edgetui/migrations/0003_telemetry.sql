-- Telemetry: sampler rows, sustained runs with their per-request stats, verdict and throttle events.
-- Times are wall-clock epoch seconds (REAL); run_id is NULL for samples taken outside a run.
CREATE TABLE IF NOT EXISTS telemetry_runs (
  id INTEGER PRIMARY KEY,
  started REAL NOT NULL,
  ended REAL,
  status TEXT NOT NULL DEFAULT 'running',  -- running | complete | incomplete
  reason TEXT,                             -- why an incomplete run stopped
  bundle TEXT,
  host TEXT,
  minutes REAL,
  max_requests INTEGER,
  bar_floor_tps REAL,
  burst_tps REAL,
  floor_tps REAL,
  p95_ttft_ms REAL,
  tokens_per_joule REAL,
  throttle_events INTEGER,
  passed INTEGER,
  verdict TEXT                             -- the whole Verdict as JSON
);

CREATE TABLE IF NOT EXISTS telemetry_samples (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES telemetry_runs(id) ON DELETE CASCADE,
  t REAL NOT NULL,
  tps REAL,
  hottest_c REAL,
  freq_mhz REAL,
  power_w REAL,
  throttle TEXT,
  data TEXT NOT NULL                       -- the whole Sample as JSON
);
CREATE INDEX IF NOT EXISTS telemetry_samples_run_t ON telemetry_samples(run_id, t);

CREATE TABLE IF NOT EXISTS telemetry_requests (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES telemetry_runs(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  question TEXT,
  t REAL NOT NULL,
  ttft_ms REAL,
  decode_tps REAL,
  decode_tokens INTEGER,
  prompt_tokens INTEGER,
  error TEXT
);
CREATE INDEX IF NOT EXISTS telemetry_requests_run ON telemetry_requests(run_id, seq);

CREATE TABLE IF NOT EXISTS throttle_events (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES telemetry_runs(id) ON DELETE CASCADE,
  cause TEXT NOT NULL,                     -- thermal | cpufreq | gpu
  subject TEXT NOT NULL,                   -- zone, 'cpu' or GPU index
  detail TEXT,
  start REAL NOT NULL,
  end REAL
);
CREATE INDEX IF NOT EXISTS throttle_events_run ON throttle_events(run_id, start);
