"""assistant (see DESIGN.md)."""
