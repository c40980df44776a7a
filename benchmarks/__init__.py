"""Benchmarks of visjax, and comparisons with peer libraries (``benchmarks.peers``)."""
