"""Tests of the ClickHouse migration tool against real ClickHouse servers (and chDB)."""
