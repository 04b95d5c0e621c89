"""Benchmarks: `python -m tests.bench [NAME ...]` runs them and prints their figures (make bench)."""
