"""botrun's Daily code checked against the installed daily-python at runtime (issue 14).

* Every ``on_*`` method of botrun's event handler is an event of ``daily.EventHandler``
  with the same parameters, read from the native class at runtime (the wheel's ``.pyi``
  stubs are stale: they lack the ``on_dialin_*`` events). A misspelt handler method would
  otherwise pass every test that calls it directly, and never be called by Daily.
* The completion arities botrun relies on (``leave`` -> ``(error)``,
  ``update_subscription_profiles`` -> one argument, ``start_dialout`` -> ``(session_id,
  error)``) hold on the real SDK, offline.
* Daily's raw native JSON log lines (printed to descriptor 2 when a request fails, even with
  ``LogLevel.Off``) end up in botrun's log, not on the terminal (issue 12 item 8).
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

daily = pytest.importorskip("daily")

from botrun.transports.daily import sdk  # noqa: E402
from botrun.transports.daily.handler import DailyHandler  # noqa: E402

TESTS = Path(__file__).resolve().parent


def _params(fn: Any) -> list[str]:
    """Parameter names after ``self`` (native methods carry a text signature)."""
    names = [p.name for p in inspect.signature(fn).parameters.values()]
    return names[1:] if names and names[0] == "self" else names


def event_problems(handler_cls: type) -> list[str]:
    real = {n: getattr(daily.EventHandler, n) for n in dir(daily.EventHandler)}
    problems = []
    ours = [n for n, v in vars(handler_cls).items() if n.startswith("on_") and callable(v)]
    assert ours, "the handler defines no events"
    for name in ours:
        if name not in real:
            problems.append(f"{name} is not a daily.EventHandler event: Daily never calls it")
            continue
        want, have = _params(real[name]), _params(getattr(handler_cls, name))
        if len(have) < len(want) or (
            len(have) > len(want)
            and any(
                p.default is inspect.Parameter.empty
                for p in list(inspect.signature(getattr(handler_cls, name)).parameters.values())[
                    len(want) + 1 :
                ]
            )
        ):
            problems.append(f"{name}{tuple(have)}: Daily calls it with {tuple(want)}")
    return problems


def test_every_handler_method_is_a_real_daily_event() -> None:
    # The runtime really has the events the stale stubs lack.
    assert "on_dialin_ready" in dir(daily.EventHandler)
    assert event_problems(DailyHandler) == []


def test_a_misspelt_or_misshapen_handler_method_is_caught() -> None:
    class Misspelt(DailyHandler):
        def on_participant_joinned(self, participant: Any) -> None: ...

    class Misshapen(DailyHandler):
        def on_participant_left(self, participant: Any) -> None: ...  # Daily passes reason

    assert event_problems(Misspelt) == [
        "on_participant_joinned is not a daily.EventHandler event: Daily never calls it"
    ]
    assert event_problems(Misshapen) == [
        "on_participant_left('participant',): Daily calls it with ('participant', 'reason')"
    ]


def test_completion_arities_botrun_relies_on_hold_offline() -> None:
    d = sdk.ensure_init()
    client = d.CallClient()
    sdk.hold()
    got: dict[str, tuple[Any, ...]] = {}
    done = {k: threading.Event() for k in ("profiles", "dialout", "leave")}

    def completion(key: str) -> Any:
        def record(*args: Any) -> None:
            got[key] = args
            done[key].set()

        return record

    try:
        client.update_subscription_profiles(
            {"base": {"camera": "unsubscribed", "microphone": "subscribed"}},
            completion=completion("profiles"),
        )
        client.start_dialout({"phoneNumber": "+15555550100"}, completion=completion("dialout"))
        client.leave(completion=completion("leave"))
        for key, event in done.items():
            assert event.wait(20), f"{key} completion never fired"
    finally:
        client.release()
        sdk.drop()
    assert len(got["leave"]) == 1  # transport._leave_and_release: done(error)
    assert len(got["profiles"]) == 1  # transport._sdk_call: error = result[-1]
    session_id, error = got["dialout"]  # transport._start_dialout: (session_id, error)
    assert session_id is None and "NotInACall" in str(error)


def run_py(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=TESTS,
    )


JOIN_A_BAD_URL = """
    import asyncio, sys
    sys.path.insert(0, ".")
    from botrun.core.errors import TransportError
    from botrun.core.logs import setup_logging
    from daily_support import RecordingEvents, make_transport

    setup_logging(sys.argv[1] if len(sys.argv) > 1 else "{level}")

    async def main():
        t = make_transport(room="not a url", room_name="x", join_timeout_s=10)
        try:
            await t.join(RecordingEvents())
        except TransportError as exc:
            print("join failed:", exc, file=sys.stderr)
        await t.leave()
        print("botrun: error: the last line", file=sys.stderr)

    asyncio.run(main())
"""


@pytest.mark.parametrize("level", ["info", "debug"])
def test_native_log_lines_go_to_botruns_log_not_the_terminal(level: str) -> None:
    """Daily prints JSON records for the failed join (real SDK, offline, immediately for a
    malformed URL); the user sees botrun's own lines, and the records only in the log."""
    r = run_py(JOIN_A_BAD_URL.replace("{level}", level))
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stderr.splitlines()
    assert not [line for line in lines if line.lstrip().startswith('{"timestamp"')]
    assert any(line.startswith("join failed: could not join not a url") for line in lines)
    # nothing lost, order kept (botrun's own debug records may follow: the SDK reports the
    # call state "left" on its own thread, after leave() returned)
    assert [line for line in lines if " DEBUG " not in line][-1] == "botrun: error: the last line"
    native = [line for line in lines if "daily (native) ERROR" in line]
    if level == "debug":
        assert any("join (request" in line and "Failed to parse url" in line for line in native)
    else:
        assert native == []


def test_only_dailys_records_are_taken_from_stderr() -> None:
    r = run_py("""
        import os, sys
        from botrun.transports.daily import native_log
        native_log.capture()
        os.write(2, b'{"timestamp":"t","level":"ERROR","fields":{"message":"m"},'
                    b'"target":"daily_core::x"}\\n')
        os.write(2, b'{"other": 1}\\nplain text, no newline')
        print("via sys.stderr", file=sys.stderr)
        native_log.release()
        print("after release", file=sys.stderr)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stderr == '{"other": 1}\nplain text, no newlinevia sys.stderr\nafter release\n'
