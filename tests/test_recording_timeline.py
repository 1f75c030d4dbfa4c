"""A call recording keeps the call's real timeline (``--record``, core/recording.py).

The mix is handed to the recorder after it was heard, sometimes in bursts: audio held up
while the event loop was busy (an agent session connecting) and keep-alive silence that
covers the time since the last frame both arrive all at once. Written back to back from
the moment they arrived, they pushed everything after them later: mix.wav outlasted the
call and the participants' words drifted away from the bot's replies to them. Here the
words must sit where they were spoken (within a frame), and both WAVs last as long as the
call."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from report_support import recorded_events
from speech import align, speak

from botrun.core.recording import CallRecorder

MIX_RATE = 24000
FRAME = MIX_RATE // 50  # 20 ms
FRAME_S = 0.02
WITHIN = 1.5 * FRAME_S  # "within a frame", with room for rounding


def _samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def _found_at(reference: np.ndarray, track: np.ndarray) -> float:
    """Where ``reference`` is in ``track`` (seconds at the mix rate), checked to be it."""
    lag, corr = align(reference, track)
    assert corr > 0.99, f"the speech is not in the recording (correlation {corr:.3f})"
    return lag / MIX_RATE


def test_a_burst_of_the_mix_is_placed_where_it_was_heard(tmp_path: Path) -> None:
    """Real speech handed over frame by frame as it is heard, except one second of it held
    up (the loop was busy) and handed over at once, then keep-alive silence in bursts of
    five frames every 0.1 s: every word stays where it was heard, the file ends with the
    call."""
    speech = speak("Could you read back my order number, please?", tmp_path / "s.wav", MIX_RATE)
    frames = [speech[i : i + FRAME] for i in range(0, len(speech) - FRAME + 1, FRAME)]
    speech = np.concatenate(frames)  # (whole frames only)
    now = [0.0]
    rec = CallRecorder(tmp_path / "rec", transport="test", clock=lambda: now[0])
    start_s, held = 0.5, range(30, 80)  # frames 30..79 (1 s) are held up
    for k, frame in enumerate(frames):
        if k in held and k != held[-1]:
            continue
        burst = [frames[j] for j in held] if k == held[-1] else [frame]
        now[0] = start_s + (k + 1) * FRAME_S  # (a frame is handed over once it was heard)
        for f in burst:
            rec.heard(f.tobytes(), MIX_RATE)
    spoken_end = start_s + len(frames) * FRAME_S
    quiet = bytes(2 * FRAME)
    for tick in range(1, 11):  # the keep-alive: what was missed since the last tick, at once
        now[0] = spoken_end + tick * 0.1
        for _ in range(5):
            rec.heard(quiet, MIX_RATE)
    end_s = spoken_end + 1.5
    now[0] = end_s
    rec.close("done")

    mix, rate = _samples(tmp_path / "rec" / "mix.wav")
    assert rate == MIX_RATE
    before, after = speech[: held[0] * FRAME], speech[held[-1] * FRAME :]
    assert abs(_found_at(before, mix) - start_s) <= WITHIN
    after_at = _found_at(after, mix)  # (it used to come the held-up second late)
    assert abs(after_at - (start_s + held[-1] * FRAME_S)) <= WITHIN, after_at
    assert abs(len(mix) / MIX_RATE - end_s) <= WITHIN, (len(mix) / MIX_RATE, end_s)
    bot, bot_rate = _samples(tmp_path / "rec" / "bot.wav")
    assert abs(len(bot) / bot_rate - end_s) <= WITHIN  # (quiet all along, the call's length)
    end = recorded_events(tmp_path / "rec")[-1]
    assert end["kind"] == "recording.end" and end["mix_s"] == pytest.approx(len(mix) / MIX_RATE)


STALL_S = 1.5  # how long the loop is busy while the agent session connects


class BusyWhileConnecting:
    """An observer that keeps the event loop busy for ``STALL_S`` when the agent session
    starts connecting, as a slow first connection does (imports, TLS): meanwhile the
    participant's audio piles up and reaches the bridge in one burst."""

    def __init__(self) -> None:
        self.stalled = False

    def __call__(self, e: Any) -> None:
        from botrun.core import events as ev

        if isinstance(e, ev.SessionStateChanged) and e.state == "connecting" and not self.stalled:
            self.stalled = True
            import time

            time.sleep(STALL_S)  # (blocking on purpose: the loop is busy)


def test_a_recorded_call_keeps_its_timeline_when_the_agent_connects_slowly(
    tmp_path: Path,
) -> None:
    """``--record`` of a WAV call against the simulator (it echoes what it heard): the
    participant's words are in mix.wav where they were spoken, mix.wav is as long as the
    call, and the bot's echo comes after the words it answers, where reply.started says."""
    from botrun.bots.runner import SharedOptions, build_config, call
    from botrun.core.config import apply_overrides
    from botrun.core.plugins import transports
    from botrun.core.sim import Simulator
    from botrun.transports.wav.plugin import SPEC
    from botrun.transports.wav.transport import WavInput, WavTransport

    rate = 16000
    spoken = speak(
        "I would like to move my appointment to Thursday morning.", tmp_path / "in.wav", rate
    )
    base = build_config(SharedOptions(), SPEC, list(transports()))
    stall = BusyWhileConnecting()

    async def run() -> Any:
        async with Simulator() as sim:
            cfg = apply_overrides(
                base,
                {
                    "agent.url": sim.url,
                    "bridge.idle_timeout_s": 0.5,
                    "bridge.leave_grace_s": 1.0,
                    "agent.greeting": "",
                },
            )
            t = WavTransport(
                [WavInput(tmp_path / "in.wav", spoken.tobytes(), 0.3, "Ann")],
                tmp_path / "out.wav",
                rate,
            )
            return await call(
                t, cfg, None, None, console=False, signals=False, observers=[stall],
                record=tmp_path / "rec",
            )  # fmt: skip

    summary = asyncio.run(run())
    assert summary.error is None, summary.error
    assert stall.stalled
    rec = tmp_path / "rec"
    events = recorded_events(rec)
    end = events[-1]
    assert end["kind"] == "recording.end"
    mix, _ = _samples(rec / "mix.wav")
    joined = next(e["t"] for e in events if e["kind"] == "participant.joined")
    from botrun.core.audio.resampler import StreamResampler

    rs = StreamResampler(rate, MIX_RATE)
    ref = np.frombuffer(rs.process(spoken.tobytes()) + rs.flush(), "<i2")
    said_at = _found_at(ref, mix)
    # the words where they were spoken: from the join on (they used to come STALL_S late)
    assert abs(said_at - joined) < 0.2, (said_at, joined)
    said_until = said_at + len(spoken) / rate
    started = [e["t"] for e in events if e["kind"] == "reply.started"]
    assert started, "the bot never answered"
    assert said_until < started[0], (said_until, started)  # the answer comes after the words
    bot, bot_rate = _samples(rec / "bot.wav")
    first_loud = int(np.argmax(np.abs(bot) > 1000)) / bot_rate
    assert abs(first_loud - started[0]) < 0.25, (first_loud, started[0])
    # as long as the call, within a frame
    assert abs(len(mix) / MIX_RATE - end["t"]) <= WITHIN, (len(mix) / MIX_RATE, end["t"])
