"""Secrets: environment or .env only, redacted from every log line and error message."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from botrun.core.errors import MissingSecretError
from botrun.core.logs import setup_logging
from botrun.core.secrets import RedactingFilter, Secrets, redact, register_secret


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = "ASSEMBLYAI_API_KEY=from-dotenv-123\nDAILY_API_KEY=dk-dotenv-9\n"
    (tmp_path / ".env").write_text(dotenv)
    s = Secrets(environ={"ASSEMBLYAI_API_KEY": "from-env-456"}, cwd=tmp_path)
    assert s.get("ASSEMBLYAI_API_KEY") == "from-env-456"
    assert s.get("DAILY_API_KEY") == "dk-dotenv-9"


def test_missing_secret_names_the_variable(tmp_path: Path) -> None:
    s = Secrets(environ={}, cwd=tmp_path)
    with pytest.raises(MissingSecretError) as info:
        s.require("AGORA_APP_ID", "to join an Agora channel")
    assert "AGORA_APP_ID" in str(info.value)
    assert info.value.exit_code == 2


def test_every_loaded_secret_is_redacted_in_logs(tmp_path: Path) -> None:
    secret_key = "sk-live-0123456789abcdef"
    Secrets(environ={"ASSEMBLYAI_API_KEY": secret_key}, cwd=tmp_path)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("connecting with key %s", secret_key)
        log.warning(f"inline {secret_key} and again {secret_key}")
        try:
            raise RuntimeError(f"refused: {secret_key}")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert secret_key not in text
    assert text.count("***") >= 4


def test_redact_error_messages_and_cli_values() -> None:
    register_secret("meeting-token-abcdef")
    assert redact("join failed for token meeting-token-abcdef") == "join failed for token ***"
    register_secret("ab")  # too short to be a real secret: would mangle ordinary words
    assert redact("about") == "about"


def test_setup_logging_attaches_the_filter_once() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        for h in list(root.handlers):
            if getattr(h, "_botrun", False):
                root.removeHandler(h)
        setup_logging("info", stream=stream)
        setup_logging("info", stream=stream)
        ours = [h for h in root.handlers if getattr(h, "_botrun", False)]
        assert len(ours) == 1
        register_secret("cert-9f8e7d6c5b4a")
        logging.getLogger("botrun.x").info("cert is cert-9f8e7d6c5b4a")
        assert "cert-9f8e7d6c5b4a" not in stream.getvalue()
        assert "cert is ***" in stream.getvalue()
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        for h in before:
            if h not in root.handlers:
                root.addHandler(h)


def test_mask_url_hides_passwords_and_credential_query_values() -> None:
    from botrun.core.secrets import mask_url, url_credentials

    url = "wss://bob:hunter2-pw@agent.example:8443/v1/ws?token=tmp_abc123&x=1&api_key=k-999#f"
    assert mask_url(url) == "wss://bob:***@agent.example:8443/v1/ws?token=***&x=1&api_key=***#f"
    assert url_credentials(url) == ["hunter2-pw", "tmp_abc123", "k-999"]
    plain = "ws://127.0.0.1:8000/v1/ws?voice=ivy"
    assert mask_url(plain) == plain and url_credentials(plain) == []
    assert mask_url("ws://user@host/ws") == "ws://user@host/ws"  # no password, nothing hidden


async def test_credentials_in_the_agent_url_are_never_shown(tmp_path: Path) -> None:
    """``--agent-url`` with a password and a ``?token=``: the console ("agent connecting:"),
    debug logs (the WebSocket request line), the transcript and the final error show
    ``***`` instead (polish item 5; the token and password were printed)."""
    import asyncio
    import socket
    import wave

    from helpers_cli import run_botrun

    from botrun.core.sim import Simulator

    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 8000)
    token, password = "tmp_SECRET0123456789", "PASSWORD-sekrit"
    async with Simulator(speed=8.0) as sim:
        host_port = sim.url.split("://", 1)[1].split("/", 1)[0]
        url = f"ws://user:{password}@{host_port}/v1/ws?token={token}"
        transcript = tmp_path / "t.jsonl"
        res = await asyncio.to_thread(
            run_botrun,
            "wav",
            "--input",
            str(wav),
            "--speed",
            "8",
            "--output",
            str(tmp_path / "out.wav"),
            "--agent-url",
            url,
            "--transcript",
            str(transcript),
            "--log-level",
            "debug",
            cwd=tmp_path,
        )
    shown = res.stdout + res.stderr + transcript.read_text()
    assert res.returncode == 0, res.stderr
    assert f"agent connecting: ws://user:***@{host_port}/v1/ws?token=***" in res.stdout
    assert token not in shown and password not in shown

    with socket.socket() as s:  # a port nothing listens on: the call ends with an error
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    url = f"ws://user:{password}@127.0.0.1:{closed}/v1/ws?token={token}"
    res = run_botrun("wav", "--input", str(wav), "--agent-url", url, cwd=tmp_path)
    shown = res.stdout + res.stderr
    assert f"ws://user:***@127.0.0.1:{closed}/v1/ws" in shown
    assert token not in shown and password not in shown
