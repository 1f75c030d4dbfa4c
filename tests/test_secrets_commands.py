"""Every credential in the environment or .env is masked by every command, the simulator's
too (issue: new-user probe items 1-3)."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import pytest
from helpers_cli import run_botrun

from botrun.core.errors import UsageError
from botrun.core.secrets import KNOWN_SECRETS, Secrets, redact

ROOT = Path(__file__).resolve().parent.parent
KEY = "aaiSECRETzz1234567890"
TWILIO = "twSECRETtok987654321"

TOOLS = '''
import os

from botrun.core.tools import tool


@tool
def leak(topic: str) -> dict:
    """Return the keys.

    Args:
        topic: Anything.
    """
    return {"key": os.environ["ASSEMBLYAI_API_KEY"], "twilio": os.environ["TWILIO_AUTH_TOKEN"]}


@tool
def boom(topic: str) -> dict:
    """Raise with the key.

    Args:
        topic: Anything.
    """
    raise RuntimeError("refused with " + os.environ["ASSEMBLYAI_API_KEY"])
'''

SCENARIO = """
name = "leak"
[[turns]]
user = "First question."
tool = { name = "leak", arguments = { topic = "a" } }
[[turns]]
user = "Second question."
tool = { name = "boom", arguments = { topic = "b" } }
"""


def _two_utterances(path: Path) -> None:
    """The bundled sample twice, with room for the replies in between and after."""
    sample = ROOT / "bots" / "assets" / "demo-hello.wav"
    with wave.open(str(sample)) as src:
        params = src.getparams()
        speech = src.readframes(src.getnframes())
    frame = params.sampwidth * params.nchannels

    def silence(s: float) -> bytes:
        return bytes(int(params.framerate * s) * frame)

    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(speech + silence(8) + speech + silence(8))


def test_demo_masks_secrets_a_tool_returns_or_raises(tmp_path: Path) -> None:
    (tmp_path / "leakbot").mkdir()
    (tmp_path / "leakbot" / "__init__.py").write_text("")
    (tmp_path / "leakbot" / "tools.py").write_text(TOOLS)
    (tmp_path / "bot.toml").write_text(
        '[agent]\ntools = ["leakbot.tools:leak", "leakbot.tools:boom"]\n'
    )
    (tmp_path / "sc.toml").write_text(SCENARIO)
    _two_utterances(tmp_path / "two.wav")
    transcript = tmp_path / "l.jsonl"
    res = run_botrun(
        "demo",
        "--config",
        "bot.toml",
        "--scenario",
        "sc.toml",
        "--input",
        "two.wav",
        "--output",
        "o.wav",
        "--transcript",
        str(transcript),
        "--log-level",
        "debug",  # the failing tool's traceback too
        cwd=tmp_path,
        env={"ASSEMBLYAI_API_KEY": KEY, "TWILIO_AUTH_TOKEN": TWILIO, "PYTHONPATH": "."},
        timeout=180,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout + res.stderr
    # the tool really ran and failed, and its words reached the console and transcript
    assert "tool leak(" in out and "tool boom(" in out, out
    assert "refused with ***" in out, out
    text = transcript.read_text()
    assert "***" in text
    for secret in (KEY, TWILIO):
        assert secret not in out
        assert secret not in text


def test_every_credential_botrun_reads_is_masked() -> None:
    """Each variable the code reads as a credential (Secrets.get/require, a secret option's
    envvar, a backend's key_vars) is a secret name, so Secrets() masks its value."""
    from botrun.core.plugins import backends

    read: set[str] = set()
    for py in [*ROOT.joinpath("bots").rglob("*.py"), *ROOT.joinpath("core").rglob("*.py")]:
        src = py.read_text()
        read |= set(re.findall(r"secrets\.(?:get|require)\(\s*\"([A-Z0-9_]+)\"", src))
    for py in ROOT.joinpath("transports").rglob("*.py"):
        src = py.read_text()
        read |= set(re.findall(r"secrets\.(?:get|require)\(\s*\"([A-Z0-9_]+)\"", src))
        read |= set(re.findall(r"envvar=\"([A-Z0-9_]+)\",\s*secret=True", src))
    for spec in backends().values():
        read |= set(spec.key_vars)
    # the ones the docs name as credentials, whatever reads them
    read |= {
        "DAILY_API_KEY",
        "DAILY_DIALIN_SECRET",
        "DAILY_MEETING_TOKEN",
        "AGORA_APP_CERTIFICATE",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_ACCOUNT_SID",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "ASSEMBLYAI_API_KEY",
        "BOTRUN_API_TOKEN",
        "BOTRUN_SIM_API_KEY",
    }
    assert "TWILIO_AUTH_TOKEN" in read and "DAILY_MEETING_TOKEN" in read
    for name in sorted(read):
        value = f"value-of-{name}-0123456789"
        Secrets(environ={name: value}, cwd=ROOT / "tests")  # (tests/ has no .env)
        assert redact(f"x {value} y") == "x *** y", name
    assert set(KNOWN_SECRETS) <= read


def test_a_plugin_backends_key_is_masked_by_its_name(tmp_path: Path) -> None:
    Secrets(environ={"ACME_API_KEY": "acme-key-5551234"}, cwd=tmp_path)
    assert redact("acme-key-5551234") == "***"
    Secrets(environ={"HOME_DIR_NAME": "not-a-secret-77"}, cwd=tmp_path)
    assert redact("not-a-secret-77") == "not-a-secret-77"


def test_dotenv_secrets_are_masked_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TWILIO_AUTH_TOKEN=tw-from-dotenv-4242\n")
    Secrets(environ={}, cwd=tmp_path)
    assert redact("tw-from-dotenv-4242") == "***"


def test_a_dotenv_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfe\n")
    with pytest.raises(UsageError) as info:
        Secrets(environ={}, cwd=tmp_path)
    assert ".env" in str(info.value) and "UTF-8" in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("command", [["demo"], ["wav", "--input", "in.wav"]])
def test_commands_report_a_bad_dotenv_in_one_line(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfe\n")
    res = run_botrun(*command, cwd=tmp_path, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert ".env" in err and "UTF-8" in err and "internal error" not in err
    assert "Traceback" not in res.stdout + res.stderr


def test_credentials_in_url_variables_are_masked(tmp_path: Path) -> None:
    Secrets(
        environ={
            "BOTRUN_QUEUE": "redis://:queue-pass-31337@redis:6379/0",
            "X_URL": "wss://h/?token=tk-7777777",
        },
        cwd=tmp_path,
    )
    assert redact("auth queue-pass-31337 and tk-7777777") == "auth *** and ***"


def test_a_queue_url_password_given_as_a_flag_is_masked() -> None:
    # BOTRUN_QUEUE from the environment was masked; the same URL given as --queue was not.
    from click.testing import CliRunner

    from botrun.bots.cli import cli
    from botrun.core.secrets import redact

    password = "qUeuEpass-7731"
    url = f"redis://:{password}@127.0.0.1:1/0"
    result = CliRunner().invoke(cli, ["serve", "--queue", url])
    assert result.exit_code != 0  # nothing listens there
    assert password not in result.output
    assert password not in redact(f"connecting with {password}")
