"""Families of bad input, as a careless or adversarial user has them: every reader, every command.

Each case asserts exit code 2, one line on stderr naming the problem (file, line, option), no
traceback, and nothing new or half-written in the outputs or the data cache. Files a reader
accepts are checked against the same data written plainly (silent wrong numbers are the worst).
"""

import codecs
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED_DATA, shared_file

from bridgeeval.cli import main
from bridgeeval.data import download
from bridgeeval.data.formats import read_matrix
from bridgeeval.files import write_json_atomic
from bridgeeval.metrics import mnno

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 4))
Y = X @ RNG.normal(size=(4, 3)) + 0.1 * RNG.normal(size=(40, 3))


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")} if folder.exists() else {}


def csv_text(values, sep=",", decimal="."):
    return "".join(sep.join(f"{v:.17g}".replace(".", decimal) for v in row) + "\n" for row in values)


# ---- readers: files that are read, and must give exactly the plain file's numbers --------------


@pytest.mark.parametrize(
    "name,writer",
    [
        ("bom.csv", lambda p: p.write_bytes(codecs.BOM_UTF8 + csv_text(X).encode())),
        ("utf16.csv", lambda p: p.write_text(csv_text(X), encoding="utf-16")),
        ("semicolon.csv", lambda p: p.write_text(csv_text(X, sep=";"))),
        ("tabs.csv", lambda p: p.write_text(csv_text(X, sep="\t"))),
        ("crlf.csv", lambda p: p.write_bytes(csv_text(X).replace("\n", "\r\n").encode())),
        ("pandas_index.csv", lambda p: pd.DataFrame(X).to_csv(p, float_format="%.17g")),
        ("pandas_noheader.csv", lambda p: pd.DataFrame(X).to_csv(p, header=False, float_format="%.17g")),
        ("named_header.csv", lambda p: pd.DataFrame(X, columns=list("abcd")).to_csv(p, index=False, float_format="%.17g")),
        ("id_header.csv", lambda p: pd.DataFrame(X).rename(columns=str).assign(id=range(5, 45))
         [["id", "0", "1", "2", "3"]].to_csv(p, index=False, float_format="%.17g")),
        ("words.csv", lambda p: p.write_text("".join(f"w{i}," + csv_text(X[i : i + 1]) for i in range(len(X))))),
        ("ids.parquet", lambda p: pd.DataFrame(X).rename(columns=str).assign(id=range(40)).to_parquet(p)),
    ],
)
def test_files_a_reader_accepts_give_the_plain_files_numbers(tmp_path, name, writer):
    path = tmp_path / name
    writer(path)
    np.testing.assert_array_equal(read_matrix(path).values, X)


def test_id_column_options_override_the_rule(tmp_path, capsys):
    path = tmp_path / "counted.csv"
    pd.DataFrame(X).to_csv(path, header=False, float_format="%.17g")  # 0..39 in the first column
    assert read_matrix(path).names == [str(i) for i in range(40)]
    kept = read_matrix(path, id_column=False).values
    assert kept.shape == (40, 5) and np.array_equal(kept[:, 0], np.arange(40))
    np.save(tmp_path / "y.npy", Y)
    code, out, err = cli(capsys, "score", path, tmp_path / "y.npy", "--json", "-k", "5")
    assert code == 0 and "read as row ids (--no-id-column keeps it)" in err
    assert json.loads(out)["mnno_input_target"] == pytest.approx(mnno(X, Y, k=5))
    code, out, _ = cli(capsys, "score", path, tmp_path / "y.npy", "--json", "-k", "5", "--no-id-column")
    assert json.loads(out)["mnno_input_target"] == pytest.approx(mnno(kept, Y, k=5))


@pytest.mark.parametrize("scale", [1e160, 1e-300, 1e30, 1e-30])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_extreme_magnitudes_give_the_rescaled_datas_mnno(scale, metric):
    assert mnno(X * scale, Y, k=5, metric=metric) == mnno(X, Y, k=5, metric=metric)
    assert mnno(X, Y * scale, k=5, metric=metric) == mnno(X, Y, k=5, metric=metric)


# ---- readers: files that are refused, with the file and the reason ------------------------------


def _npy_bytes():
    import io

    buffer = io.BytesIO()
    np.save(buffer, X)
    return buffer.getvalue()


BAD_FILES = [
    ("decimal_commas.csv", lambda p: p.write_text(csv_text(X, sep=";", decimal=",")), "both ',' and ';' appear"),
    ("latin1.csv", lambda p: p.write_bytes("w1,1,2\ncafé,3,4\n".encode("latin-1")), "line 2: not UTF-8 text"),
    ("renamed.csv", lambda p: p.write_bytes(_npy_bytes()), "a binary file, not text"),
    ("complex.npy", lambda p: np.save(p, X.astype(complex)), "complex values (dtype complex128)"),
    ("complex.pt", lambda p: torch.save(torch.tensor(X, dtype=torch.complex64), p), "complex values"),
    ("objects.npy", lambda p: np.save(p, np.array([{"a": 1}] * 3), allow_pickle=True), "not a readable .npy"),
    ("empty.npy", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    ("truncated.npy", lambda p: p.write_bytes(_npy_bytes()[:200]), "not a readable .npy array"),
    ("renamed.npy", lambda p: p.write_text(csv_text(X)), "not a .npy file (no NumPy header"),
    ("ragged.csv", lambda p: p.write_text("1,2,3\n4,5\n"), "line 2: 2 values where earlier lines have 3"),
    ("text.csv", lambda p: p.write_text("1,2,3\n4,x,6\n"), "line 2, column 2: 'x' is not a number"),
    ("empty.csv", lambda p: p.write_text(""), "empty file"),
    ("header_only.csv", lambda p: p.write_text("id,a,b\n"), "empty file"),
    ("folder.csv", lambda p: p.mkdir(), "is a folder, not a file"),
    ("values.xlsx", lambda p: p.write_text("x"), "unknown format .xlsx"),
]


@pytest.mark.parametrize("name,writer,message", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_are_one_line_naming_the_file(tmp_path, capsys, name, writer, message):
    bad = tmp_path / name
    writer(bad)
    np.save(tmp_path / "good.npy", X)
    code, _, err = cli(capsys, "score", bad, tmp_path / "good.npy")
    one_line_error(code, err, str(bad), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "good.npy"])


def test_json_output_is_strict_and_says_what_is_undefined(tmp_path, capsys):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    np.save(tmp_path / "f.npy", np.tile(Y[:1], (40, 1)) + RNG.normal(size=(40, 3)))
    const = np.ones((40, 3))
    const[:, 0] = np.arange(40)  # column 0 varies so that neighbours exist; columns 1, 2 are constant
    np.save(tmp_path / "c.npy", np.ones((40, 3)) * [1.0, 2.0, 3.0])
    code, out, err = cli(capsys, "score", tmp_path / "x.npy", tmp_path / "c.npy", tmp_path / "f.npy", "--json",
                         "-k", "3", "--metric", "euclidean")
    assert code == 0, err
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert report["r2"] is None and "r2" in report["undefined_keys"]  # R^2 of a constant target
    written = write_json_atomic(tmp_path / "m.json", {"val/r2": float("nan"), "ok": 1.0})
    assert json.loads(written.read_text()) == {"val/r2": None, "ok": 1.0, "undefined_keys": ["val/r2"]}


# ---- command-line options ----------------------------------------------------------------------

OPTION_CASES = [
    (["score", "X", "Y", "--sample", "-5"], "argument --sample: -5 must be 1 or more"),
    (["score", "X", "Y", "--sample", "0"], "argument --sample: 0 must be 1 or more"),
    (["score", "X", "Y", "--sample", "41"], "--sample 41: more query rows than the 40 items"),
    (["score", "X", "Y", "-k", "0"], "argument -k: 0 must be 1 or more"),
    (["score", "X", "Y", "-k", "40"], "k=40 is too large for 40 items"),
    (["score", "X", "Y", "-k", "ten"], "argument -k: 'ten' is not an integer"),
    (["score", "X", "Y", "--metric", "dot"], "argument --metric: invalid choice: 'dot'"),
    (["score", "X", "Y", "--id-column", "--no-id-column"], "not allowed with argument"),
    (["score", "X", "/nonexistent/y.npy"], "/nonexistent/y.npy: no such file"),
    (["report", "RUNS", "--alpha", "nan"], "argument --alpha: nan must be between 0 and 1"),
    (["report", "RUNS", "--alpha", "-1"], "argument --alpha: -1 must be between 0 and 1"),
    (["report", "RUNS", "--alpha", "1"], "argument --alpha: 1 must be between 0 and 1"),
    (["report", "RUNS", "--out", "/proc/table.md"], "--out /proc/table.md: cannot write there"),
    (["report", "RUNS", "--figures", "/proc/figures"], "--figures /proc/figures: cannot write there"),
    (["report", "RUNS", "--out", "TMP"], "is a folder; give a file path"),
    (["report", "TMP/none"], "no such file or folder"),
    (["plot", "RUNS", "--out", "/proc/fig.png"], "--out /proc/fig.png: cannot write there"),
    (["sweep", "status", "s", "--storage", "journal:TMP/corrupt.log"], "corrupt.log, line 2: not a journal record"),
    (["sweep", "best", "s", "--storage", "journal:TMP/corrupt.log"], "corrupt.log, line 2: not a journal record"),
    (["data", "fetch", "nope"], "unknown data set 'nope'"),
    (["data", "add", "imagenet", "--from", "/etc"], "/etc: no files for imagenet; expected names like"),
    (["data", "add", "imagenet", "--from", "/nonexistent"], "--from /nonexistent: not a folder"),
    (["bench", "--sizes", "10x"], "--sizes"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One real finished training job (1 epoch, 2 folds) to point report/plot at."""
    out = tmp_path_factory.mktemp("run")
    proc = subprocess.run([sys.executable, "train.py", "debug=fast", "logger=none", f"hydra.run.dir={out}"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-1500:]
    return out


@pytest.mark.parametrize("argv,message", OPTION_CASES, ids=[" ".join(c[0][:4]) for c in OPTION_CASES])
def test_bad_options_are_one_line(tmp_path, capsys, monkeypatch, finished_run, argv, message):
    monkeypatch.setenv("BRIDGEEVAL_DATA", str(tmp_path / "cache"))
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    (tmp_path / "corrupt.log").write_text('{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n'
                                          'not json\n'
                                          '{"op_code": 0, "worker_id": "w", "study_name": "t", "directions": [1]}\n')
    before = tree(finished_run)
    subs = {"X": tmp_path / "x.npy", "Y": tmp_path / "y.npy", "RUNS": finished_run, "TMP": tmp_path}
    args = [subs.get(a, a) if not a.startswith(("TMP/", "journal:TMP")) else a.replace("TMP", str(tmp_path))
            for a in argv]
    with pytest.raises(SystemExit) if message.startswith("argument") or "not allowed" in message else _nothing():
        code, _, err = cli(capsys, *args)
        one_line_error(code, err, message)
    if message.startswith("argument") or "not allowed" in message:
        err = capsys.readouterr().err
        one_line_error(2, err, message)
    assert tree(finished_run) == before
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.csv"))


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_corrupt_items_file_is_one_line_and_left_as_it_is(tmp_path, capsys, finished_run, damage):
    """A job whose items.npz is damaged (a disk, a careless copy): the report names the file and
    says what to do, instead of a traceback or a table quietly without the tests over items."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    items = run / "items.npz"
    data = items.read_bytes()
    items.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    before = tree(run)
    code, _, err = cli(capsys, "report", run)
    one_line_error(code, err, str(items), "corrupt items.npz", "rerun the job")
    assert tree(run) == before


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---- the data cache ----------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("BRIDGEEVAL_DATA", str(root))
    return root


def test_add_copies_only_the_entrys_files_and_no_link_out_of_the_folder(cache, tmp_path, capsys):
    src = tmp_path / "authors"
    src.mkdir()
    words = ["dog", "cat", "car", "tree"]
    (src / "glove.csv").write_text("".join(f"{w},{i},1,2\n" for i, w in enumerate(words)))
    (src / "vgg128.csv").write_text("".join(f"{w},1,{i}\n" for i, w in enumerate(words)))
    (src / "shadow").write_text("root:x:0:0\n")
    (src / "notes.csv").write_text("1,2\n")
    code, out, err = cli(capsys, "data", "add", "imagenet", "--from", src)
    assert code == 0, err
    assert sorted(p.name for p in (cache / "imagenet").iterdir() if not p.name.startswith(".")) == [
        "ADDED", "glove.csv", "vgg128.csv"]
    (src / "resnet.csv").symlink_to("/etc/passwd")
    code, _, err = cli(capsys, "data", "add", "imagenet", "--from", src)
    one_line_error(code, err, "resnet.csv: a link to /etc/passwd, outside")
    assert not (cache / "imagenet" / "resnet.csv").exists()
    mode = (cache / "imagenet" / "glove.csv").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # group-readable where the umask allows, not mkstemp's 0600


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_training_split_of_the_wrong_width_is_refused(cache, tmp_path, capsys):
    shared_file("iaprtc", "TS_vis_vgg128.csv")
    download.fetch("iaprtc", mirror=SHARED_DATA.as_uri(), progress=False)
    src = tmp_path / "tr"
    src.mkdir()
    (src / "TR_vis_vgg128.csv").write_text("".join(f"{i},{','.join(['0.5'] * 127)}\n" for i in range(5)))
    (src / "TR_lang_biGRU.csv").write_text("".join(f"{i},{','.join(['0.5'] * 10)}\n" for i in range(5)))
    code, _, err = cli(capsys, "data", "add", "iaprtc_train", "--from", src)
    one_line_error(code, err, "TR_vis_vgg128.csv: 127 values per row, but iaprtc's TS_vis_vgg128.csv has 128")
    assert not (cache / "iaprtc_train").exists() or not list((cache / "iaprtc_train").glob("*.csv"))


def test_data_list_tells_missing_corrupt_and_verified(cache, capsys):
    shared_file("wordsim", "EN-MC-30.txt")
    download.fetch("mc30", mirror=SHARED_DATA.as_uri(), progress=False)
    download.fetch("rg65", mirror=SHARED_DATA.as_uri(), progress=False)
    (cache / "rg65" / "EN-RG-65.txt").write_text("tampered\n")
    code, out, _ = cli(capsys, "data", "list")
    states = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert (states["mc30"], states["rg65"], states["men"]) == ("verified", "corrupt", "missing")
    code, out, _ = cli(capsys, "data", "verify", "rg65")
    assert code == 1 and "corrupt: size" in out


class _Server:
    """A real loopback HTTP server whose handler misbehaves in a chosen way."""

    def __init__(self, handler):
        import http.server
        import threading

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(body):
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            try:
                body(self.wfile)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def _endless(out):
    line = (",".join(["0.5"] * 128) + "\n").encode()
    for _ in range(100_000):
        out.write(line)


def _stall(out):
    import time

    out.write(b"1,0.5,0.5\n")
    out.flush()
    time.sleep(5)


@pytest.mark.parametrize(
    "body,env,message",
    [
        (_endless, {"BRIDGEEVAL_MAX_DOWNLOAD": "1000000"}, "more than 1000000 bytes, the most accepted"),
        (_stall, {"BRIDGEEVAL_DOWNLOAD_TIMEOUT": "1"}, "the download stalled or broke off"),
    ],
    ids=["endless", "stalled"],
)
def test_a_misbehaving_server_is_one_line_and_leaves_nothing(cache, capsys, monkeypatch, body, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    server = _Server(_handler(body))
    try:
        code, _, err = cli(capsys, "data", "fetch", "iaprtc_train", "--mirror", server.url)
    finally:
        server.close()
    one_line_error(code, err, message, "TR_vis_vgg128.csv")
    assert sorted(p.name for p in (cache / "iaprtc_train").iterdir()) == [".lock"]


def test_a_failing_disk_is_one_line_and_leaves_nothing(cache):
    shared_file("wiki", "wiki.mat")
    # A file-size limit makes every write past 1 MB fail as a full disk does (EFBIG instead of ENOSPC).
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)); "
        "from bridgeeval.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run([sys.executable, "-c", code, "data", "fetch", "wiki", "--mirror", SHARED_DATA.as_uri()],
                          capture_output=True, text=True, env={**os.environ, "BRIDGEEVAL_DATA": str(cache)})
    one_line_error(proc.returncode, proc.stderr, "cannot write wiki.mat (File too large); nothing was kept")
    assert sorted(p.name for p in (cache / "wiki").iterdir()) == [".lock"]


def test_two_fetches_of_one_data_set_at_once_both_succeed(cache, tmp_path):
    src = shared_file("wiki", "wiki.mat")
    import http.server
    import time

    class Slow(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def copyfile(self, source, out):
            while block := source.read(1 << 16):
                out.write(block)
                time.sleep(0.02)

    mirror = tmp_path / "mirror"
    shutil.copytree(src.parent, mirror / "wiki")
    import functools

    server = _Server(functools.partial(Slow, directory=str(mirror)))
    env = {**os.environ, "BRIDGEEVAL_DATA": str(cache)}
    cmd = [sys.executable, "-m", "bridgeeval.cli", "data", "fetch", "wiki", "--mirror", server.url]
    try:
        first = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True)
        first_err = first.communicate()[1]
    finally:
        server.close()
    assert first.returncode == 0 and second.returncode == 0, (first_err, second.stderr)
    assert "waiting for another process" in second.stderr
    assert download.verify("wiki")["wiki.mat"] == (True, "ok")
    assert not list((cache / "wiki").glob(".*.part"))


def test_version_and_a_plain_folder_as_mirror(cache, capsys):
    from bridgeeval import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"bridgeeval {__version__}"
    shared_file("wordsim", "EN-MC-30.txt")
    code, out, err = cli(capsys, "data", "fetch", "mc30", "--mirror", SHARED_DATA)  # a folder, not a URL
    assert code == 0, err
    assert download.verify("mc30")["EN-MC-30.txt"] == (True, "ok")


def test_every_command_and_option_has_help():
    import argparse

    from bridgeeval.cli import build_parser

    missing = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing.extend(f"{path} {name}" for name in action.choices if name not in helped)
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "bridgeeval")
    assert not missing


def test_untrained_names_what_to_do_for_benchmarks_without_a_download():
    from bridgeeval.untrained.run import _how_to_get

    assert "bridgeeval data fetch men" in _how_to_get("men")
    assert "no download known; give the file as benchmarks.semsim=PATH" in _how_to_get("semsim")


@pytest.mark.parametrize("tamper, message", [
    ("zeroed", "the mean of fold0.nno_input_mapped is 0, the record says"),
    ("shortened", "fold0.nno_input_mapped has 5 values for"),
    ("foreign index", "fold0.index is not a list of distinct items"),
])
def test_items_that_disagree_with_the_record_are_refused(tmp_path, capsys, finished_run, tamper, message):
    """A hand-edited items.npz: the report's means would come from metrics.json and its intervals
    and p-values from the edited items (or a broadcast traceback): refused, naming the file."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    items = dict(np.load(run / "items.npz"))
    if tamper == "zeroed":
        items["fold0.nno_input_mapped"] = np.zeros_like(items["fold0.nno_input_mapped"])
    elif tamper == "shortened":
        items["fold0.nno_input_mapped"] = items["fold0.nno_input_mapped"][:5]
    else:
        items["fold0.index"] = np.full_like(items["fold0.index"], 10**6)
    np.savez(run / "items.npz", **items)
    before = tree(run)
    code, _, err = cli(capsys, "report", run)
    one_line_error(code, err, str(run / "items.npz"), "does not match metrics.json", message, "rerun the job")
    assert tree(run) == before


# ---- round 3: arrays that are ordinary data, and files that are not ----------------------------


@pytest.mark.parametrize("name, writer, values", [
    ("u16.npy", lambda p, a: np.save(p, a.astype(np.uint16)), lambda a: a.astype(np.uint16)),
    ("u64.npy", lambda p, a: np.save(p, a.astype(np.uint64)), lambda a: a.astype(np.uint64)),
    ("big_endian.npy", lambda p, a: np.save(p, a.astype(">f8")), lambda a: a),
    ("sparse.pt", lambda p, a: torch.save(torch.from_numpy(a).to_sparse(), p), lambda a: a),
    ("csr.pt", lambda p, a: torch.save(torch.from_numpy(a).to_sparse_csr(), p), lambda a: a),
    ("f8.pt", lambda p, a: torch.save(torch.from_numpy(a).to(torch.float8_e4m3fn), p),
     lambda a: torch.from_numpy(a).to(torch.float8_e4m3fn).double().numpy()),
])
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")  # writing the file
def test_unusual_arrays_are_read_as_their_numbers(tmp_path, capsys, name, writer, values):
    counts = np.abs(X * 100).round()  # whole numbers: the integer files hold them exactly
    writer(tmp_path / name, counts)
    np.save(tmp_path / "plain.npy", values(counts).astype(np.float64))
    np.save(tmp_path / "y.npy", Y)
    assert np.array_equal(read_matrix(tmp_path / name).values, np.load(tmp_path / "plain.npy"))
    code, out, err = cli(capsys, "score", tmp_path / name, tmp_path / "y.npy", "--json")
    assert code == 0, err
    _, plain, _ = cli(capsys, "score", tmp_path / "plain.npy", tmp_path / "y.npy", "--json")
    assert json.loads(out) == json.loads(plain)


@pytest.mark.parametrize("name, writer, message", [
    ("bool.pt", lambda p: torch.save(torch.from_numpy(X > 0), p), "bool.pt: a tensor of dtype torch.bool is not numeric"),
    ("ragged.parquet", lambda p: pd.DataFrame({"v": [[1.0, 2.0], [3.0]] + [[1.0, 2.0]] * 38}).to_parquet(p),
     "ragged.parquet: column 'v': row 1 has 1 values, row 0 has 2"),
])
def test_files_that_are_not_matrices_are_one_line(tmp_path, capsys, name, writer, message):
    writer(tmp_path / name)
    np.save(tmp_path / "y.npy", Y)
    code, _, err = cli(capsys, "score", tmp_path / name, tmp_path / "y.npy")
    one_line_error(code, err, message)


@pytest.mark.parametrize("device, message", [
    ("banana", "'banana' is not a torch device"),
    ("meta", "meta tensors hold no values"),
    pytest.param("cuda", "cuda is not available here",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_a_device_that_is_not_here_is_one_line(tmp_path, capsys, device, message):
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(SystemExit) as exit_:
        cli(capsys, "score", tmp_path / "x.npy", tmp_path / "x.npy", "--device", device)
    one_line_error(exit_.value.code, capsys.readouterr().err, "argument --device", message)


@pytest.mark.parametrize("edit, message", [
    ({"data": "x"}, "field 'data' is \"x\", not an object"),
    ({"folds": "oops"}, "field 'folds' is \"oops\", not a list"),
    ({"folds": ["oops"]}, "folds[0] is \"oops\", not an object of values"),
    ({"k": True}, "field 'k' is true, not a whole number"),
    ({"val/mnno_input_mapped": float("nan")}, "val/mnno_input_mapped is nan, which strict JSON cannot hold"),
])
def test_a_hand_edited_record_is_named_not_a_traceback(tmp_path, capsys, finished_run, edit, message):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    record = json.loads((run / "metrics.json").read_text())
    record.update(edit)
    (run / "metrics.json").write_text(json.dumps(record))
    code, _, err = cli(capsys, "report", run)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and len(lines) == 2, err
    assert f"{run}/metrics.json: " in lines[0] and message in lines[0] and lines[0].endswith(", skipped")
    assert lines[1] == f"bridgeeval: error: no finished job (metrics.json) under {run}"


@pytest.mark.parametrize("text", ["a: 1\n", "- 5\n- mapper=nn\n", "\xff\xfe"])
def test_overrides_that_are_not_a_list_of_strings_are_ignored(tmp_path, finished_run, text):
    from bridgeeval.reports.collect import job_overrides

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / ".hydra" / "overrides.yaml").write_bytes(text.encode("latin-1"))
    assert job_overrides(run) is None
    code = main(["plot", str(run), "--out", str(tmp_path / "fig.png")])
    assert code == 0 and (tmp_path / "fig.png").is_file()
