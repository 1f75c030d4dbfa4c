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
