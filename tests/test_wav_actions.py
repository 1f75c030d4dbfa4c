"""Call actions on the WAV transport (issue 16 item 6): a keypad schedule, hang-up that stops
the run, transfer and DTMF written down so every flow runs offline.

The transport runs for real on the loop (its inputs spoken from PCM in memory); a recording
TransportEvents stands in for the bridge. No timing asserts: order and attribution only, with
generous margins between scheduled moments."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import wave
from pathlib import Path
from typing import Any

import pytest
import system_tools
from helpers_cli import run_botrun

from botrun.core.errors import CallActionError, UsageError
from botrun.transports.wav.keypad import KeyPress, parse_dtmf_schedule
from botrun.transports.wav.transport import WavInput, WavTransport

RATE = 16000
ASSETS = Path(__file__).resolve().parent.parent / "bots" / "assets"


class Recorder:
    """TransportEvents recording what the transport reports, with the meeting time."""

    def __init__(self, transport: WavTransport) -> None:
        self.t = transport
        self.calls: list[tuple[Any, ...]] = []
        self.frames: dict[str, int] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:  # meeting time, as the transport counts it
        return (time.monotonic() - self.t._t0) * self.t.time_scale

    def participant_joined(self, pid: str, name: str | None = None) -> None:
        self.calls.append(("joined", pid))

    def participant_updated(self, pid: str, name: str | None = None) -> None:
        pass

    def participant_left(self, pid: str, reason: str = "") -> None:
        self.calls.append(("left", pid, reason))

    def audio(self, pid: str, pcm: bytes, sample_rate: int) -> None:
        with self._lock:
            self.frames[pid] = self.frames.get(pid, 0) + 1

    def ended(self, reason: str, error: str | None = None) -> None:
        self.calls.append(("ended", reason))

    def participant_phone(self, pid: str, number: str | None = None) -> None:
        self.calls.append(("phone", pid, number))

    def dtmf(self, pid: str | None, digit: str) -> None:
        self.calls.append(("dtmf", pid, digit, self._now(), dict(self.frames)))

    def status(self, state: str, detail: str = "") -> None:
        self.calls.append(("status", state))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(RATE * seconds)


def transport(tmp_path: Path, inputs: list[tuple[float, float]], **kw: Any) -> WavTransport:
    """Inputs as (start, duration) in meeting seconds."""
    wavs = [
        WavInput(path=tmp_path / f"in{i}.wav", pcm=silence(d), at_s=at, name=f"p{i + 1}")
        for i, (at, d) in enumerate(inputs)
    ]
    return WavTransport(wavs, tmp_path / "out.wav", RATE, **kw)


async def until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ the schedule
def test_a_schedule_parses_in_time_order() -> None:
    assert parse_dtmf_schedule("4.0:#, 2.5:1,3:ab*") == [
        KeyPress(2.5, "1"),
        KeyPress(3.0, "AB*"),
        KeyPress(4.0, "#"),
    ]
    assert parse_dtmf_schedule(None) == [] and parse_dtmf_schedule("  ") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2.5:x", r"--dtmf '2.5:x': 'x' is not a keypad digit \(0-9, \*, #, A-D\)"),
        ("2.5", r"--dtmf '2.5': expected SECONDS:DIGITS entries separated by commas"),
        ("1:1,,2:2", r"--dtmf '': expected SECONDS:DIGITS"),
        ("soon:1", r"'soon' is not a time in seconds"),
        ("-1:1", r"'-1' is not a time in seconds"),
        ("nan:1", r"'nan' is not a time in seconds"),
        ("2.5:", r"expected SECONDS:DIGITS"),
    ],
)
def test_a_bad_schedule_is_a_usage_error_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_dtmf_schedule(text)


def test_cli_bad_schedule_exits_2_with_one_line(tmp_path: Path) -> None:
    res = run_botrun(
        "wav",
        "--input",
        str(ASSETS / "demo-hello.wav"),
        "--output",
        str(tmp_path / "o.wav"),
        "--dtmf",
        "2.5:1,4.0:x",
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (
        "botrun: error: --dtmf '4.0:x': 'x' is not a keypad digit (0-9, *, #, A-D)"
    )
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--output", "./u1.wav"], "--output u1.wav"),
        (["--output", "o.wav", "--transcript", "u1.wav"], "--transcript u1.wav"),
        (["--output", "o.wav", "--record", "rec"], "--record's bot.wav rec/bot.wav"),
    ],
)
def test_cli_refuses_to_overwrite_an_input(tmp_path: Path, flags: list[str], named: str) -> None:
    """Probe item 6: ``--output`` (or --transcript, or what --record writes) naming one of the
    inputs is a one-line usage error (exit 2), and the input is left as it was."""
    import shutil

    (tmp_path / "rec").mkdir()
    shutil.copy(ASSETS / "demo-hello.wav", tmp_path / "u1.wav")
    shutil.copy(ASSETS / "demo-hello.wav", tmp_path / "rec" / "bot.wav")
    before = (tmp_path / "u1.wav").read_bytes()
    second = "rec/bot.wav" if "rec" in flags else "u1.wav"
    res = run_botrun("wav", "--input", "u1.wav", "--input", second, *flags, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (
        f"botrun: error: {named} is also an input file (--input): botrun would overwrite it "
        "(write to another file)"
    )
    assert (tmp_path / "u1.wav").read_bytes() == before
    assert (tmp_path / "rec" / "bot.wav").read_bytes() == (ASSETS / "demo-hello.wav").read_bytes()
    assert not (tmp_path / "o.wav").exists()


# ------------------------------------------------------------------ DTMF in
async def test_keys_are_pressed_at_call_time_by_whoever_is_in_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """p1 speaks 0-1 s, p2 speaks 2.5-3.5 s; presses at 0.5 (p1), 1.75 (nobody is in the
    call: skipped, probe item 3, with an info line), 3.0 (p2)."""
    caplog.set_level(logging.INFO, logger="botrun.wav")
    t = transport(
        tmp_path,
        [(0.0, 1.0), (2.5, 1.0)],
        dtmf=parse_dtmf_schedule("0.5:1,1.75:*,3.0:#9"),
    )
    ev = Recorder(t)
    await t.join(ev)
    try:
        await until(lambda: len(ev.of("dtmf")) == 3)
        await until(lambda: all(task.done() for task in t._tasks))  # the keypad is done
    finally:
        await t.leave()
    got = [(pid, digit) for _, pid, digit, _, _ in ev.of("dtmf")]
    assert got == [("wav-1", "1"), ("wav-2", "#"), ("wav-2", "9")]
    for (_, _, _, at, _), due in zip(ev.of("dtmf"), (0.5, 3.0, 3.0), strict=True):
        assert at >= due - 0.01  # never early
    assert "keypad at 1.75 s: '*' skipped: nobody is in the call" in caplog.text


async def test_a_press_after_the_caller_was_transferred_is_not_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe item 3: the only participant is transferred before a scheduled press (its input
    would go on longer): nobody is left to press it, so no DTMF event reaches the bot."""
    caplog.set_level(logging.INFO, logger="botrun.wav")
    t = transport(tmp_path, [(0.0, 30.0)], speed=4.0, dtmf=parse_dtmf_schedule("0.2:1,2:9"))
    ev = Recorder(t)
    await t.join(ev)
    try:
        await until(lambda: len(ev.of("dtmf")) == 1)
        await t.transfer("+14155550100")
        await until(lambda: all(task.done() for task in t._tasks))  # the keypad is done
    finally:
        await t.leave()
    assert [(pid, digit) for _, pid, digit, _, _ in ev.of("dtmf")] == [("wav-1", "1")]
    assert "keypad at 2 s: '9' skipped: nobody is in the call" in caplog.text


async def test_the_phone_caller_presses_the_keys(tmp_path: Path) -> None:
    """Probe item 3 (as --help says): with a phone caller in the call, it presses the keys,
    even when another participant joined first."""
    t = transport(tmp_path, [(0.0, 30.0), (0.0, 30.0)], speed=4.0, dtmf=parse_dtmf_schedule("1:5"))
    t.inputs[1].phone = "+14155550123"
    ev = Recorder(t)
    await t.join(ev)
    try:
        await until(lambda: ev.of("dtmf"))
    finally:
        await t.leave()
    assert [(pid, digit) for _, pid, digit, _, _ in ev.of("dtmf")] == [("wav-2", "5")]


async def test_the_schedule_follows_speed(tmp_path: Path) -> None:
    """At --speed 10 a press at call time 1.0 s comes while p1 (4 s of meeting time) still
    speaks, after about 50 of its 200 frames; read in wall-clock seconds it would come long
    after p1 had left."""
    t = transport(tmp_path, [(0.0, 4.0)], speed=10.0, dtmf=parse_dtmf_schedule("1.0:5"))
    ev = Recorder(t)
    await t.join(ev)
    try:
        await until(lambda: ev.of("dtmf"))
    finally:
        await t.leave()
    ((_, pid, digit, at, frames),) = ev.of("dtmf")
    assert (pid, digit) == ("wav-1", "5")
    assert at >= 0.99
    assert 0 < frames["wav-1"] < 200


# ------------------------------------------------------------------ hang up
async def test_hang_up_stops_the_inputs_and_leave_closes_the_recording(tmp_path: Path) -> None:
    t = transport(tmp_path, [(0.0, 30.0), (20.0, 5.0)], dtmf=parse_dtmf_schedule("25:1"))
    ev = Recorder(t)
    await t.join(ev)
    await until(lambda: ev.frames.get("wav-1", 0) >= 5)
    t.write_audio(silence(0.02))  # the bot's goodbye (one chunk)
    await t.hang_up("end_call")
    assert not t.participants_pending()  # the bridge need not wait for wav-2
    frames = ev.frames["wav-1"]
    await asyncio.sleep(0.2)
    assert ev.frames["wav-1"] == frames  # nothing more from the inputs
    await t.leave()
    assert t.hung_up == "end_call" and t.actions == [{"action": "hang_up", "reason": "end_call"}]
    assert t.recorded == tmp_path / "out.wav"
    with wave.open(str(t.recorded), "rb") as w:  # closed cleanly: a readable header
        assert w.getframerate() == RATE and 0 < w.getnframes() < RATE * 30
    assert ev.of("dtmf") == [] and ("joined", "wav-2") not in ev.calls


# ------------------------------------------------------------------ transfer, DTMF out
async def test_transfer_is_recorded_and_the_caller_leaves(tmp_path: Path) -> None:
    t = transport(tmp_path, [(0.0, 30.0), (0.0, 30.0)])
    ev = Recorder(t)
    await t.join(ev)
    try:
        await until(lambda: len(ev.of("joined")) == 2)
        await t.transfer("sip:sales@example.com")  # nobody named: the first caller
        await t.transfer("+14155550100", participant_id="wav-2")
        with pytest.raises(CallActionError, match="cannot transfer participant wav-1"):
            await t.transfer("+14155550100", participant_id="wav-1")  # already gone
        with pytest.raises(CallActionError, match="cannot transfer anyone: not in the call"):
            await t.transfer("+14155550100")
        await t.send_dtmf("12#")
    finally:
        await t.leave()
    assert ev.of("left") == [("left", "wav-1", "transferred"), ("left", "wav-2", "transferred")]
    assert t.actions == [
        {"action": "transfer", "target": "sip:sales@example.com", "participant": "wav-1"},
        {"action": "transfer", "target": "+14155550100", "participant": "wav-2"},
        {"action": "send_dtmf", "digits": "12#", "participant": None},
    ]


async def test_dial_out_is_not_something_the_wav_transport_can_do(tmp_path: Path) -> None:
    t = transport(tmp_path, [(0.0, 1.0)])
    with pytest.raises(CallActionError, match="the wav transport cannot dial out"):
        await t.dial_out("+14155550100")


# ------------------------------------------------------------------ phone callers
async def test_a_phone_input_is_reported_as_a_phone_caller_and_transferred_first(
    tmp_path: Path,
) -> None:
    src = tmp_path / "caller.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(silence(30.0))
    t = WavTransport.from_options(
        {
            "input": [src, src],
            "participant": ["Ann", "Caller"],
            "phone": [None, " +14155550123 "],
            "output": tmp_path / "out.wav",
        }
    )
    ev = Recorder(t)
    await t.join(ev)
    try:
        await until(lambda: len(ev.of("joined")) == 2)
        # Reported before the join, as the bridge wants it (either order is allowed).
        assert ev.calls.index(("phone", "wav-2", "+14155550123")) < ev.calls.index(
            ("joined", "wav-2")
        )
        assert ev.of("phone") == [("phone", "wav-2", "+14155550123")]
        await t.transfer("sip:sales@example.com")  # nobody named: the phone caller
    finally:
        await t.leave()
    assert ev.of("left") == [("left", "wav-2", "transferred")]


@pytest.mark.parametrize("number", ["555-0123", "14155550123", "tel:+14155550123"])
def test_a_bad_phone_number_is_a_usage_error(tmp_path: Path, number: str) -> None:
    with pytest.raises(UsageError, match=r"--phone .*: expected a phone number in E\.164 form"):
        WavTransport.from_options(
            {"input": [ASSETS / "demo-hello.wav"], "phone": [number], "output": tmp_path / "o"}
        )


async def test_presses_after_the_last_input_ends_are_warned_about_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe item 7: with a 1 s input, "5:2" and "100:3" would come from nobody (the
    participant has left): one warning at start names them, and they are never pressed."""
    with caplog.at_level(logging.WARNING, logger="botrun.wav"):
        t = transport(
            tmp_path, [(0.0, 1.0)], speed=4.0, dtmf=parse_dtmf_schedule("0.5:1,5:2,100:3")
        )
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "2 key presses at 5 s, 100 s" in warning and "after the last input ends" in warning
    assert t.keypresses == [KeyPress(0.5, "1")]
    ev = Recorder(t)
    await t.join(ev)
    try:
        await until(lambda: ("left", "wav-1", "input ended") in ev.calls)
        await until(lambda: all(task.done() for task in t._tasks))  # the keypad is done
    finally:
        await t.leave()
    assert [(pid, digit) for _, pid, digit, _, _ in ev.of("dtmf")] == [("wav-1", "1")]


def test_help_says_which_wavs_are_converted_and_which_are_refused(tmp_path: Path) -> None:
    """Probe item 7: --help said any WAV "width" is converted, but μ-law and A-law are refused;
    it now says which, and the refusal it announces is what happens."""
    import subprocess

    res = run_botrun("wav", "--help")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "Any WAV sample rate, width" not in text
    assert "compressed ones (μ-law, A-law, ADPCM) are refused" in text
    ulaw = tmp_path / "ulaw.wav"
    sox = system_tools.require("sox")
    subprocess.run(
        [
            sox,
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "u-law",
            str(ulaw),
            "synth",
            "0.3",
            "sine",
            "300",
        ],
        check=True,
    )
    res = run_botrun("wav", "--input", str(ulaw), "--output", str(tmp_path / "o.wav"))
    assert res.returncode == 2 and "μ-law WAV files are not read" in res.stderr, res.stderr
