"""Benchmarks: the tutorial's recipe (bench.tutorial_baseline) against classifier/trainer. See bench/README.md."""
