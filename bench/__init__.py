"""Benchmarks and the olmOCR-style evaluation: scripts that print JSON (run `python -m bench.all`)."""
