"""evals (see DESIGN.md)."""
