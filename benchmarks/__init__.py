"""Speed benchmarks run by `make perf` (outside the installed package)."""
