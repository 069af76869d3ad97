"""logger.wandb.mode=auto: online for users with credentials and a server that answers, else
offline with the reason. A real loopback socket stands in for the server; no network is needed."""

import socket

import pytest

from bridgeeval.errors import BridgeEvalError
from bridgeeval.tracking.wandb_mode import decide


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path


@pytest.fixture
def server():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_logged_in_user_goes_online_when_the_server_answers(clean_env, server, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", server)
    (clean_env / "netrc").write_text("machine 127.0.0.1\n  login user\n  password 0123456789abcdef\n")
    (clean_env / "netrc").chmod(0o600)
    offline, reason = decide("auto")
    assert offline is False and "credentials" in reason


def test_without_credentials_or_server_it_stays_offline_and_says_why(clean_env, server, monkeypatch):
    monkeypatch.setenv("WANDB_BASE_URL", server)
    offline, reason = decide("auto")
    assert offline and "no W&B credentials for 127.0.0.1" in reason and "wandb login" in reason
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed}")
    offline, reason = decide("auto", timeout=0.5)
    assert offline and "does not answer" in reason


def test_explicit_choices_win(clean_env, monkeypatch):
    assert decide("online") == (False, "logger.wandb.mode=online")
    assert decide("offline")[0] is True
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert decide("auto") == (True, "WANDB_MODE=offline")
    with pytest.raises(BridgeEvalError, match="logger.wandb.mode='sometimes'"):
        decide("sometimes")


@pytest.mark.slow
def test_each_job_of_a_multirun_decides_from_the_users_environment(clean_env, tmp_path):
    """Lightning's offline WandbLogger sets WANDB_MODE=dryrun in the process: job 1 of a multirun
    said 'WANDB_MODE=dryrun' although the user set nothing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(NETRC=str(clean_env / "netrc"), WANDB_BASE_URL="http://127.0.0.1:9", WANDB_SILENT="true")
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", "logger=wandb", "debug=fast", "trainer.max_epochs=1", "seed=1,2",
         f"hydra.sweep.dir={tmp_path / 'multi'}"],
        cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if "W&B offline" in line]
    assert len(said) == 2 and all("no W&B credentials for 127.0.0.1" in line for line in said), said


def test_the_logger_class_takes_mode_and_refuses_the_old_offline_switch(clean_env, tmp_path):
    """``logger.wandb``'s target is a class that takes ``mode`` itself: nothing is stripped from
    its config before instantiating, and the older ``offline`` switch gets a one-line pointer."""
    from bridgeeval.tracking.loggers import WandbLogger

    logger = WandbLogger(mode="offline", save_dir=str(tmp_path), project="p")
    assert logger.decision == (True, "logger.wandb.mode=offline") and logger._offline is True
    with pytest.raises(BridgeEvalError, match=r"^logger.wandb.offline=True: replaced by logger.wandb.mode=offline"):
        WandbLogger(offline=True, save_dir=str(tmp_path))
