"""Throughput and latency benchmark of the ledger on an embedded PostgreSQL (`python -m bench.run`).

Not a test suite: nothing here is collected by pytest."""
