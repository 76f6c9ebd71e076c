"""distill (see DESIGN.md)."""
