"""telemetry (see DESIGN.md)."""
