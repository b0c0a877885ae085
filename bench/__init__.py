"""``make bench``: performance figures as ratios against raw baselines measured in the same
run, written to BENCHMARKS.md. Each ``bench_*.py`` module has ``run() -> list[Row]``."""
