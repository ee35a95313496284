#!/usr/bin/env python3
"""Per-kernel time of one decode step, from an Nsight Compute CSV.

    ncu --clock-control none --csv --page raw --metrics gpu__time_duration.sum \
        --launch-skip N --launch-count M PROGRAM ... > ncu.csv
    python3 scripts/cuda/ncu_summary.py ncu.csv

A step starts at each `embedding` kernel; only whole steps (from one `embedding` to
the next) are counted. Prints, per kernel name, launches a step, median µs a launch
and µs a step, then the step's summed kernel time (no launch gaps: compare it with a
replayed step's wall time to see the gaps).
"""
import csv
import statistics
import sys
from collections import defaultdict


UNIT_KEY = "gpu__time_duration.sum"
TO_US = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}


def rows(path):
    """The kernel rows, and the scale from the metric's unit to µs."""
    with open(path, newline="") as f:
        # ncu prints its own lines (==PROF== ...) before the CSV header.
        lines = [l for l in f if l.startswith('"')]
    data, scale = [], None
    for r in csv.DictReader(lines):
        if not r.get("ID", "").strip().isdigit():
            scale = TO_US.get(r.get(UNIT_KEY, "").strip(), scale)  # the units row
            continue
        data.append(r)
    return data, scale or 1e-3


def main():
    data, scale = rows(sys.argv[1])
    if not data:
        sys.exit("no kernels in the CSV")
    unit_key = UNIT_KEY
    starts = [i for i, r in enumerate(data) if r["Kernel Name"].startswith("embedding")]
    if len(starts) < 2:
        sys.exit(f"fewer than two steps captured ({len(starts)} embedding launches)")
    steps = len(starts) - 1
    per = defaultdict(list)
    for r in data[starts[0]:starts[-1]]:
        name = r["Kernel Name"].split("(")[0][:60]
        per[name].append(float(r[unit_key].replace(",", "")) * scale)
    total = sum(sum(v) for v in per.values()) / steps
    print(f"{steps} whole steps, {sum(len(v) for v in per.values()) // steps} launches a step")
    print(f"{'kernel':60s} {'/step':>6s} {'med µs':>8s} {'µs/step':>9s} {'share':>6s}")
    for name, v in sorted(per.items(), key=lambda kv: -sum(kv[1])):
        s = sum(v) / steps
        print(f"{name:60s} {len(v) / steps:6.0f} {statistics.median(v):8.2f} {s:9.1f} {s / total:6.1%}")
    print(f"{'summed kernel time a step':60s} {'':6s} {'':8s} {total:9.1f}")


if __name__ == "__main__":
    main()
