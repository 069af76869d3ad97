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
    assert decide("auto", offline=True)[0] is True
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert decide("auto") == (True, "WANDB_MODE=offline")
    with pytest.raises(BridgeEvalError, match="logger.wandb.mode='sometimes'"):
        decide("sometimes")
