"""Careless input to the commands: one line, exit 2, nothing written or left half-done."""

from __future__ import annotations

import numpy as np
import pytest

from bridgeeval.cli import main


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, message", [
    (["--directions", ","], "--directions=',': name at least one of text2image, image2text"),
    (["--directions", "sideways"], "--directions: unknown 'sideways'; choose from text2image, image2text"),
    (["--mappers", "cnn"], "--mappers: unknown 'cnn'; choose from lin, nn"),
    (["--losses", "hinge"], "--losses: unknown 'hinge'; choose from mse, cosine, max_margin"),
    (["--depths", "0"], "--depths='0': comma-separated whole numbers"),
    (["--depths", "x"], "--depths='x': comma-separated whole numbers"),
    (["--datasets", ","], "--datasets=',': name at least one"),
    (["--mappers", "lin", "--depths", "3", "--datasets", "imagenet1k"], "mapper=lin has no hidden layers; depth=3"),
])
def test_reproduce_refuses_bad_lists_before_any_process_or_folder(tmp_path, capsys, args, message):
    out = tmp_path / "deep" / "out"
    code, _, err = _run(capsys, "reproduce", "table1", *args, "--out", out)
    assert code == 2 and err.strip() == f"bridgeeval: error: {err.strip().split('error: ', 1)[1]}"
    assert message in err and "HYDRA_FULL_ERROR" not in err
    assert not (tmp_path / "deep").exists()  # a refused call leaves no empty --out folder


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("ckpt")
    spec = {"_target_": "bridgeeval.models.mappers.LinearMap", "in_dim": 4, "out_dim": 3}
    state = {"mapper.weight": torch.full((3, 4), 10.0), "mapper.bias": torch.zeros(3)}
    path = folder / "lin.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"mapper": spec}, "pytorch-lightning_version": "2.6.0"}, path)
    return path


@pytest.mark.parametrize("row, message", [
    ([1e300, 0, 0, 0], "row 1 is outside float32's range (the map computes in float32); nothing written"),
    ([3e38, 3e38, 3e38, 3e38], "row 1 maps to NaN or infinite values (the map overflows float32 there)"),
])
def test_map_never_writes_non_finite_values(tmp_path, capsys, tiny_checkpoint, row, message):
    x = np.ones((3, 4))
    x[1] = row
    np.save(tmp_path / "x.npy", x)
    code, _, err = _run(capsys, "map", tiny_checkpoint, tmp_path / "x.npy", "-o", tmp_path / "fx.npy")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "fx.npy").exists()
    np.save(tmp_path / "ok.npy", np.ones((3, 4)))
    code, out, _ = _run(capsys, "map", tiny_checkpoint, tmp_path / "ok.npy", "-o", tmp_path / "fx.npy")
    assert code == 0 and np.array_equal(np.load(tmp_path / "fx.npy"), np.full((3, 3), 40.0, dtype=np.float32))


def test_a_closed_pipe_ends_quietly(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.standard_normal((30, 5)))
    np.save(tmp_path / "y.npy", rng.standard_normal((30, 5)))
    cmd = (f"{sys.executable} -m bridgeeval.cli score {tmp_path / 'x.npy'} {tmp_path / 'y.npy'} "
           "--measures all --json | head -c 1")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "{"
    assert "Broken pipe" not in proc.stderr and "Traceback" not in proc.stderr and "Exception" not in proc.stderr


def test_an_output_never_replaces_an_input_or_a_record(tmp_path, capsys, tiny_checkpoint):
    np.save(tmp_path / "x.npy", np.ones((3, 4)))
    before = (tmp_path / "x.npy").read_bytes()
    code, _, err = _run(capsys, "map", tiny_checkpoint, tmp_path / "x.npy", "-o", tmp_path / "x.npy")
    assert code == 2 and "--out" in err and "is an input of this command" in err
    assert (tmp_path / "x.npy").read_bytes() == before
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    for command in (["report", run, "--out", run / "metrics.json"], ["plot", run, "--out", run / "history.csv"]):
        code, _, err = _run(capsys, *command)
        assert code == 2 and "a job's record has that name; write elsewhere" in err, err
    assert (run / "metrics.json").read_text() == "{}" and not (run / "history.csv").exists()
