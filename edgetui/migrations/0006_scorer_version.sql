-- The scorer that scored a run (scoring.SCORER_VERSION). Runs stored before this column existed were
-- scored by version 1 (no `lead` check); runs are compared only with runs of the same scorer version.
ALTER TABLE eval_runs ADD COLUMN scorer_version INTEGER NOT NULL DEFAULT 1;
