"""Reproducible experiments whose numbers go into training/RESULTS.md."""
