"""Benchmark suite of lgnrt, laid out for airspeed velocity (asv).

One module per area; docs/benchmarks.md describes how to run them.
"""
