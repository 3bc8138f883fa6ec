"""Callback modules the benchmarks start (real modules, resolved by name like any other)."""
