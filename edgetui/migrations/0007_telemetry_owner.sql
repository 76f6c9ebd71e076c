-- The process that owns a sustained run or an open throttle event (edgetui/owner.py): a 'running' run or
-- an open event whose process is gone was abandoned (kill -9, power loss). Rows from before this column
-- have no pid and count as abandoned.
ALTER TABLE telemetry_runs ADD COLUMN pid INTEGER;
ALTER TABLE throttle_events ADD COLUMN pid INTEGER;
ALTER TABLE throttle_events ADD COLUMN host TEXT;
