"""Judging a bundle on labelled images: metrics and verdict counts (evaluate), the HTML report, and
latency (bench)."""
