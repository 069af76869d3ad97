"""bench on a busy CPU says so (its ratios are an idle machine's only when the machine is idle)."""

from __future__ import annotations

import subprocess
import sys

from bridgeeval.bench.machine import BUSY_CORES, busy_warning, other_load


def test_a_spinning_process_is_seen_and_bench_warns_before_its_table():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert other_load(0.5) >= 0.8  # one core's worth, whatever else runs
        proc = subprocess.run([sys.executable, "-m", "bridgeeval.cli", "bench", "--sizes", "300x16", "--methods",
                               "torch"], capture_output=True, text=True, timeout=300)
    finally:
        spinner.kill()
    assert proc.returncode == 0, proc.stderr[-2000:]
    warning = [ln for ln in proc.stderr.splitlines() if ln.startswith("bridgeeval: warning: the CPU is busy")]
    assert len(warning) == 1 and "ratios measured now can be far from an idle machine's" in warning[0]
    assert proc.stdout.startswith("machine: ") and "| 300 x 16 |" in proc.stdout


def test_the_warning_threshold():
    assert busy_warning(None) is None and busy_warning(0.0) is None and busy_warning(BUSY_CORES) is None
    assert "other processes use 1.5 of" in busy_warning(1.5)


def test_bench_null_times_each_measures_null_beside_one_value():
    import json

    proc = subprocess.run([sys.executable, "-m", "bridgeeval.cli", "bench", "--measures", "mnno,rsa", "--null", "3",
                           "--sizes", "300x16", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout[proc.stdout.index("{"):])["nulls"]
    assert [r["measure"] for r in rows] == ["mnno", "rsa"]
    for row in rows:
        assert row["permutations"] == 3 and row["null_s"] > 0 and row["measure_s"] > 0
        assert row["null_over_measure"] == row["null_s"] / row["measure_s"]
        assert row["p_value"] == 0.25  # Y = X W + noise: the pairing is far above 3 shuffles
    proc = subprocess.run([sys.executable, "-m", "bridgeeval.cli", "bench", "--null", "3"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "give --measures too" in proc.stderr
