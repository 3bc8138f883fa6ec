"""Benchmarks (run from the repository root: ``python bench/runtime.py --quick``)."""
