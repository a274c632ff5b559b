"""Benchmarks the workflow runs: `etc bench`, `etc latency`, and the timing they share."""
