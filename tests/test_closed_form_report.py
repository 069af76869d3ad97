"""``report`` sets each trained linear map beside the closed form fitted on the very same folds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from sweep_helpers import REPO


@pytest.mark.slow
def test_report_pairs_lin_with_the_lstsq_job_of_the_same_folds_and_gives_the_gap(tmp_path):
    subprocess.run([sys.executable, "train.py", "-m", "mapper=lin,lstsq", "cv.seed=0,1", "debug=fast", "logger=none",
                    f"hydra.sweep.dir={tmp_path}"], cwd=REPO, check=True, capture_output=True, timeout=600)
    jobs = {}
    for record in tmp_path.glob("*/metrics.json"):
        overrides = yaml.safe_load((record.parent / ".hydra" / "overrides.yaml").read_text())
        jobs[tuple(sorted(o for o in overrides if o.startswith(("mapper=", "cv.seed="))))] = json.loads(record.read_text())
    said = subprocess.run([sys.executable, "-m", "bridgeeval.cli", "report", str(tmp_path), "--evaluation", "fold"],
                          capture_output=True, text=True, check=True).stdout
    lines = [line for line in said.splitlines() if line.startswith("| imagenet1k text2image |")]
    assert len(lines) == 2  # one per fold seed: a lin job is never set against other folds' lstsq
    got = sorted(lines)
    for seed in (0, 1):
        lin, lstsq = jobs[("cv.seed=%d" % seed, "mapper=lin")], jobs[("cv.seed=%d" % seed, "mapper=lstsq")]
        cells = [f"{lin['val/loss']:.3f}", f"{lstsq['val/loss']:.3f}", f"{lin['val/loss'] - lstsq['val/loss']:+.3f}",
                 f"{lin['val/mnno_input_mapped']:.3f}", f"{lstsq['val/mnno_input_mapped']:.3f}",
                 f"{lin['val/mnno_input_mapped'] - lstsq['val/mnno_input_mapped']:+.3f}"]
        assert any(" | ".join(cells) in line for line in got), (seed, got)
