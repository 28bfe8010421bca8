"""Benchmark cases: each module declares `CASES`, a tuple of `bench.harness.BenchCase`."""
