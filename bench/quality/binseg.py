"""Offline binary segmentation (ruptures) on the quality bench's labelled series.

Reads a JSON list of series (lists of floats) on stdin and prints a JSON list of change
points per series: 0-based indices where a new segment starts. Binary segmentation with
the l2 cost and the penalty that R's `changepoint` package uses by default (MBIC,
3 ln n), scaled by the noise variance, which ruptures' l2 cost leaves unnormalised:
sigma is the median absolute first difference / (0.6745 * sqrt 2). This is the
"default" binary segmentation of van den Burg & Williams (2020).

Run by `cargo run --release -p modelwatch-quality-bench` with target/bench-venv's python
(bench/quality/binseg creates that venv).
"""

import json
import math
import sys

import numpy as np
import ruptures as rpt


def change_points(series):
    signal = np.asarray(series, dtype=float)
    n = len(signal)
    if n < 4:
        return []
    sigma = np.median(np.abs(np.diff(signal))) / (0.6745 * math.sqrt(2.0))
    if not sigma > 0:
        sigma = np.std(signal) or 1.0
    penalty = 3.0 * math.log(n) * sigma * sigma
    ends = rpt.Binseg(model="l2", min_size=2, jump=1).fit(signal).predict(pen=penalty)
    return [int(b) for b in ends if b < n]


def main():
    series = json.load(sys.stdin)
    json.dump([change_points(s) for s in series], sys.stdout)


if __name__ == "__main__":
    main()
