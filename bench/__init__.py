"""`make bench`: the product timed against its floors, case by case (docs/benchmarks.md).

Not part of the test suite and never imported by the product. `bench/harness.py` runs each
case of `bench/cases/*.py` in its own process (so its peak memory is its own), prints one
table and, with `--write`, puts it in docs/benchmarks.md.
"""
