"""Regressions from a new user's probe of the CLI: each failure a user can cause is one
clear line and exit 2, never ``internal error``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers_cli import run_botrun

BAD_WAVS = {
    "riff-wave-junk": b"RIFF\0\0\0\0WAVEjunk",  # scipy: UnboundLocalError
    "riff-only": b"RIFF",  # scipy: struct.error (unpack requires a buffer of 4 bytes)
}


@pytest.mark.parametrize("name", sorted(BAD_WAVS))
def test_a_malformed_wav_is_named_not_an_internal_error(tmp_path: Path, name: str) -> None:
    from botrun.core.errors import UsageError
    from botrun.transports.wav.wavio import read_wav_mono16

    bad = tmp_path / "bad.wav"
    bad.write_bytes(BAD_WAVS[name])
    with pytest.raises(UsageError, match=r"bad\.wav is not a valid WAV file"):
        read_wav_mono16(bad, 16000)
    res = run_botrun(
        "wav",
        "--input",
        str(bad),
        "--output",
        str(tmp_path / "o.wav"),
        "--agent-url",
        "ws://127.0.0.1:9/",
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr
    assert "internal error" not in res.stderr
    assert "bad.wav is not a valid WAV file (" in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr


def _botrun_without_twilio(
    tmp_path: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``botrun ARGS`` in a process where ``import twilio`` fails (the extra not installed)."""
    code = (
        "import runpy, sys\n"
        "sys.modules['twilio'] = None  # import twilio raises ImportError\n"
        f"sys.argv = ['botrun', *{list(args)!r}]\n"
        "runpy.run_module('botrun.bots.cli', run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        timeout=60,
    )


TWILIO_ENV = {
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "secret-token-for-test",
    "PUBLIC_URL": "https://example.invalid",
    "TWILIO_FROM_NUMBER": "+15550001111",
}
HINT = "Twilio calls need the twilio package: pip install 'botrun[twilio]'"


def test_call_without_the_twilio_extra_names_the_extra(tmp_path: Path) -> None:
    res = _botrun_without_twilio(tmp_path, "call", "+15551234567", env=TWILIO_ENV)
    assert res.returncode == 2, res.stderr
    assert HINT in res.stderr and "internal error" not in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr


def test_serve_with_a_twilio_token_without_the_extra_names_the_extra(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text('[agent]\nurl = "ws://127.0.0.1:9/"\n', encoding="utf-8")
    env = {**TWILIO_ENV, "BOTRUN_API_KEY": "k" * 32}
    res = _botrun_without_twilio(tmp_path, "serve", "--config", str(cfg), "--port", "0", env=env)
    assert res.returncode == 2, res.stderr
    assert HINT in res.stderr and "internal error" not in res.stderr
    assert "secret-token-for-test" not in res.stderr


def test_worker_without_daily_python_refuses_at_start(tmp_path: Path) -> None:
    """As ``botrun serve`` does, rather than starting and failing every call."""
    code = (
        "import runpy, sys\n"
        "sys.modules['daily'] = None  # import daily raises ImportError\n"
        "sys.argv = ['botrun', 'worker', '--queue', 'redis://127.0.0.1:9/0']\n"
        "runpy.run_module('botrun.bots.cli', run_name='__main__')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAILY_API_KEY": "k" * 20},
        timeout=60,
    )
    assert res.returncode == 2, res.stderr
    assert "every bot would fail" in res.stderr and "daily-python" in res.stderr
    assert "internal error" not in res.stderr


def test_twilio_help_says_it_runs_no_call_and_offers_no_meeting_options() -> None:
    res = run_botrun("twilio", "--help")
    assert res.returncode == 0, res.stderr
    assert "This command runs no call" in res.stdout and "botrun serve" in res.stdout
    for flag in ("--transcode", "--record", "--backend", "--agent-url", "--config"):
        assert flag not in res.stdout, flag
    assert "transcode" in res.stdout  # the [twilio] table's keys are still documented
    res = run_botrun("twilio")
    assert res.returncode == 2 and "Twilio calls run inside `botrun serve`" in res.stderr
    top = run_botrun("--help").stdout
    joinable = top.split("Transports (join a meeting)", 1)[1].split("\n\n", 1)[0]
    assert "twilio" not in joinable and "daily" in joinable
    assert "twilio" in top


def test_the_twilio_table_is_still_validated(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text('[agent]\nurl = "ws://127.0.0.1:9/"\n[twilio]\ntranscod = true\n')
    res = run_botrun("wav", "--config", str(cfg), "--input", "x.wav", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "transcod" in res.stderr and "internal error" not in res.stderr


def _wav_table(tmp_path: Path, phone: str) -> Path:
    from speech import write_wav

    for name in ("a", "b"):
        write_wav(tmp_path / f"{name}.wav", b"\1\0" * 1600, 16000)
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        '[agent]\nurl = "ws://127.0.0.1:9/"\n'
        f'[wav]\ninput = ["a.wav", "b.wav"]\nphone = {phone}\n'
        f'output = "{tmp_path / "o.wav"}"\n',
        encoding="utf-8",
    )
    return cfg


def test_a_wav_table_can_make_only_the_second_input_a_phone_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.bots.runner import SharedOptions, transport_context
    from botrun.transports.wav.plugin import SPEC
    from botrun.transports.wav.transport import WavTransport

    monkeypatch.chdir(tmp_path)
    cfg = _wav_table(tmp_path, '["", "+14155550123"]')
    shared = SharedOptions(config=cfg)
    ctx = transport_context(SPEC, shared, {o.name: None for o in SPEC.options})
    transport = SPEC.factory(ctx)
    assert isinstance(transport, WavTransport)
    assert [i.phone for i in transport.inputs] == [None, "+14155550123"]


def test_a_bad_phone_in_a_wav_table_names_the_file_and_key(tmp_path: Path) -> None:
    cfg = _wav_table(tmp_path, '["nope", "+14155550123"]')
    res = run_botrun("wav", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "bot.toml: [wav] phone 'nope'" in res.stderr, res.stderr
    assert "--phone" not in res.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["wav", "--output", "{missing}/o.wav"], "--output"),
        (["wav", "--output", "{tmp}/o.wav", "--transcript", "{missing}/t.jsonl"], "--transcript"),
        (["wav", "--output", "{tmp}/o.wav", "--record", "{missing}/rec"], "--record"),
        (["demo", "--output", "{missing}/d.wav"], "--output"),
    ],
)
def test_an_output_in_a_missing_directory_is_refused_not_created(
    tmp_path: Path, args: list[str], flag: str
) -> None:
    """Probe item 8: no missing directory is created (as root that could be /nonexist)."""
    missing = tmp_path / "missing"
    wav = Path(__file__).resolve().parent.parent / "bots" / "assets" / "demo-hello.wav"
    argv = [a.format(missing=missing, tmp=tmp_path) for a in args]
    if argv[0] == "wav":
        argv += ["--input", str(wav), "--agent-url", "ws://127.0.0.1:9/"]
    res = run_botrun(*argv, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert f"{flag} {missing}/" in res.stderr and f"directory {missing} does not exist" in (
        res.stderr
    )
    assert not missing.exists()


def test_report_output_in_a_missing_directory_names_it(tmp_path: Path) -> None:
    rec = tmp_path / "rec1"
    rec.mkdir()
    res = run_botrun("report", str(rec), "-o", str(tmp_path / "no" / "dir" / "r.html"))
    assert res.returncode == 2, res.stderr
    assert f"directory {tmp_path / 'no' / 'dir'} does not exist" in res.stderr
