"""Process-level rules of daily-python, each checked in a fresh subprocess (breaking one
aborts the whole process, which is exactly what these tests would observe)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from helpers_cli import run_botrun

pytest.importorskip("daily")


def run_py(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_second_raw_init_aborts_the_process() -> None:
    """Why the guard exists: calling Daily.init twice kills the process."""
    r = run_py("""
        from daily import Daily, LogLevel
        Daily.init(log_level=LogLevel.Off)
        Daily.init(log_level=LogLevel.Off)
        print("survived")
    """)
    assert r.returncode != 0 and "survived" not in r.stdout


def test_ensure_init_initialises_once_across_threads_and_exits_cleanly() -> None:
    r = run_py("""
        import threading
        from botrun.transports.daily import sdk
        threads = [threading.Thread(target=sdk.ensure_init) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        d = sdk.ensure_init()
        c = d.CallClient(); sdk.hold()
        mic = sdk.microphone("botrun-mic", 16000)
        assert sdk.microphone("botrun-mic", 16000) is mic   # process-global, made once
        c.release(); sdk.drop()
        print("ok", sdk.is_initialised(), sdk.live_objects())
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["ok", "True", "0"]


def test_exit_with_a_parked_client_mid_join_skips_deinit_and_exits_cleanly() -> None:
    """deinit with a live client aborts; the exit hook must notice and skip it."""
    r = run_py("""
        import time
        from botrun.transports.daily import sdk
        d = sdk.ensure_init()
        c = d.CallClient()
        c.join("https://botrun-test.daily.co/room", None, {}, completion=lambda d, e: None)
        src = d.CustomAudioSource(16000, 1)
        sdk.keep_forever((c, src))
        time.sleep(0.2)
        print("bye", sdk.live_objects())
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["bye", "1"]


def test_missing_daily_python_is_a_usage_error_naming_the_extra() -> None:
    r = run_py("""
        import sys
        sys.modules["daily"] = None   # as if daily-python were not installed
        from botrun.core.errors import UsageError
        from botrun.transports.daily import sdk
        try:
            sdk.ensure_init()
        except UsageError as exc:
            print(exc)
    """)
    assert r.returncode == 0, r.stderr
    assert "pip install 'botrun[daily]'" in r.stdout


def test_cli_without_daily_python_prints_one_line_and_exits_2(tmp_path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['daily'] = None\n")
    r = run_botrun(
        "daily",
        "--room",
        "https://botrun-test.daily.co/room",
        "--agent-url",
        "ws://127.0.0.1:9/",
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("botrun: error: ") and "pip install 'botrun[daily]'" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--room", "botrun-test.daily.co/room"), "not a Daily room URL"),
        (("--room", "https://botrun-test.daily.co/"), "not a Daily room URL"),
        (("--room", "https://botrun-test.daily.co/r", "--dial-out", "555"), "E.164"),
        (
            ("--room", "https://botrun-test.daily.co/r", "--dialin-call-id", "x"),
            "--dialin-call-domain",
        ),
        (("--room", "https://botrun-test.daily.co/r", "--audio-out", "speaker"), "speaker"),
    ],
)
def test_bad_options_fail_before_anything_starts(args: tuple[str, ...], message: str) -> None:
    r = run_botrun("daily", *args, "--agent-url", "ws://127.0.0.1:9/")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
