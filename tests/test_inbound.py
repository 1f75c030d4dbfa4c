"""The inbound path (mix at the meeting rate, resample once, batch) and how the bridge
drives it (issue 15 bug 3): absent members hold nobody back, queued audio drains on a clock
and when someone leaves, and the keep-alive silence leaves through the same path, after the
tail. The quality bar: what the agent hears of a voice is that voice resampled as one
stream, within 1 LSB of resampling it alone piece by piece, with nothing lost at its end.

The InboundPath tests pass time explicitly (``now``), as the bridge does. The bridge tests
run a real Bridge on the event loop with a stub agent client that records what it was sent;
they wait for conditions (generous timeouts), never for a duration."""

from __future__ import annotations

import asyncio
import time
from collections import deque

import numpy as np

from botrun.core.audio.resampler import StreamResampler
from botrun.core.bridge import Bridge
from botrun.core.config import config_from_dict
from botrun.core.inbound import InboundPath
from botrun.core.transport import Transport, TransportEvents

IN_RATE = 16000
OUT_FRAME = 480  # 20 ms at 24 kHz
IN_FRAME = 320  # 20 ms at 16 kHz: the mixer's frame at the meeting rate
PIECE = 160  # 10 ms at 16 kHz, as Daily delivers


def speech16(ms: int, seed: int = 1) -> np.ndarray:
    """Loud-ish harmonic signal that stays non-zero to its last sample."""
    t = np.arange(ms * IN_RATE // 1000) / IN_RATE
    f0 = 150 + 50 * seed
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in (1, 2, 3))
    return np.round(x / np.max(np.abs(x)) * 9000).astype(np.int16)


def pieces(x: np.ndarray, n: int = PIECE) -> list[bytes]:
    return [x[i : i + n].astype("<i2").tobytes() for i in range(0, len(x), n)]


def chunked_ref(chunks: list[bytes]) -> np.ndarray:
    """What a StreamResampler makes of these chunks (the bridge's own resampler path)."""
    rs = StreamResampler(IN_RATE, 24000)
    out = b"".join(rs.process(c) for c in chunks)
    return np.frombuffer(out, dtype="<i2")


def heard_ref(x16: np.ndarray, extra_frames: int = 0) -> np.ndarray:
    """What the agent should hear of one voice: the voice padded with silence to whole
    20 ms frames (plus ``extra_frames`` of silence), resampled once, as one stream."""
    x = np.r_[x16, np.zeros(-len(x16) % IN_FRAME + extra_frames * IN_FRAME, dtype=np.int16)]
    rs = StreamResampler(IN_RATE, 24000)
    out = b"".join(rs.process(x[i : i + IN_FRAME].tobytes()) for i in range(0, x.size, IN_FRAME))
    return np.frombuffer(out, dtype="<i2")


def assert_heard(got: np.ndarray, x16: np.ndarray, chunks: list[bytes], extra: int = 0) -> None:
    """``got`` is the voice as one stream (exactly), and within 1 LSB of resampling each
    piece through a resampler of its own (the path before the meeting-rate mix)."""
    np.testing.assert_array_equal(got, heard_ref(x16, extra))
    alone = chunked_ref(chunks)
    assert np.abs(got[: alone.size].astype(np.int32) - alone).max() <= 1


def samples(frames: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(frames), dtype="<i2")


def padded(x: np.ndarray) -> np.ndarray:
    return np.r_[x, np.zeros(-len(x) % OUT_FRAME, dtype=x.dtype)]


# ---------------------------------------------------------------------- InboundPath
def test_a_member_who_never_sends_does_not_delay_the_one_who_talks() -> None:
    path = InboundPath(max_lag_ms=60)
    path.add("talker")
    path.add("muted")  # listened, joined muted: never sends a frame
    chunks = pieces(speech16(400), 320)  # 20 ms frames
    out: list[bytes] = []
    for i, c in enumerate(chunks):
        t = 10.0 + i * 0.02
        path.push("talker", c, IN_RATE, t)
        frames = path.pop(t)
        assert len(frames) == 1, f"frame {i} was held back waiting for the absent member"
        out += frames
    assert_heard(samples(out), speech16(400), chunks)


def test_a_member_who_stops_sending_delays_the_others_once_not_on_every_frame() -> None:
    path = InboundPath(max_lag_ms=60)
    a, b = pieces(speech16(600), 320), pieces(speech16(600, seed=2), 320)
    arrived: deque[float] = deque()
    delays: list[float] = []  # per frame of a's: emitted - arrived

    def emitted(frames: list[bytes], now: float) -> None:
        delays.extend(now - arrived.popleft() for _ in frames)

    for i in range(len(a)):
        t = 10.0 + i * 0.02
        due = path.next_due()  # the clock the bridge keeps: drain what falls due
        if due is not None and due <= t:
            emitted(path.pop(due), due)
        path.push("a", a[i], IN_RATE, t)
        arrived.append(t)
        if i < 3:  # b talks, then its track stalls for good
            path.push("b", b[i], IN_RATE, t)
        emitted(path.pop(t), t)
    # the frame b first misses waits max_lag (the two behind it less); none after that
    assert np.round(np.array(delays) * 1000).tolist() == [0, 0, 0, 60, 40, 20] + [0] * 24
    assert path.next_due() is None


def test_a_sole_speakers_tail_is_emitted_on_the_clock_after_they_stop() -> None:
    path = InboundPath(max_lag_ms=60)
    path.add("a")
    voice = speech16(1010)
    chunks = pieces(voice)  # ends with half a 20 ms frame
    out: list[bytes] = []
    t = 0.0
    for i, c in enumerate(chunks):
        t = 5.0 + (i + 1) * 0.01
        path.push("a", c, IN_RATE, t)
        out += path.pop(t)
    body = chunked_ref(chunks)
    assert len(samples(out)) == len(body) - OUT_FRAME // 2  # the last half frame waits
    due = path.next_due()  # nothing else will arrive: the caller comes back then
    assert due is not None and abs(due - (t + 0.06)) < 1e-9
    assert path.pop(due - 0.001) == []
    out += path.pop(due)
    assert_heard(samples(out), voice, chunks)  # padded: the filter's tail is in the padding
    assert path.next_due() is None


def test_a_sole_leavers_last_words_are_emitted_whole_at_once() -> None:
    path = InboundPath(max_lag_ms=60)
    path.set_members(["a"], 0.0)
    voice = speech16(1010)
    chunks = pieces(voice)
    out: list[bytes] = []
    for i, c in enumerate(chunks):
        path.push("a", c, IN_RATE, (i + 1) * 0.01)
        out += path.pop((i + 1) * 0.01)
    path.set_members([], 1.015)  # a leaves 5 ms after its last audio
    out += path.pop(1.015)
    # everything, including what was still inside the resampler's filter, nothing after
    assert_heard(samples(out), voice, chunks)
    assert path.next_due() is None
    assert path.pop(99.0) == [] and path.keepalive(0) == []


def test_keepalive_silence_comes_after_the_queued_tail() -> None:
    path = InboundPath(max_lag_ms=60)
    path.add("a")
    voice = speech16(1010)
    chunks = pieces(voice)
    out: list[bytes] = []
    for i, c in enumerate(chunks):
        path.push("a", c, IN_RATE, (i + 1) * 0.01)
        out += path.pop((i + 1) * 0.01)
    silence = path.keepalive(4)  # the keep-alive asks for 4 frames while a tail is queued
    assert len(silence) == 4
    out += silence
    assert_heard(samples(out), voice, chunks, extra=3)
    body = len(padded(chunked_ref(chunks)))
    assert not samples(out)[body + OUT_FRAME // 2 :].any()  # silence after the filter's tail


def test_a_leaver_whose_words_end_on_a_frame_edge_still_gets_the_filters_tail_sent() -> None:
    path = InboundPath(max_lag_ms=60)
    path.set_members(["a"], 0.0)
    voice = speech16(1000)  # whole frames: nothing is padded, the tail is inside the filter
    chunks = pieces(voice)
    out: list[bytes] = []
    for i, c in enumerate(chunks):
        path.push("a", c, IN_RATE, (i + 1) * 0.01)
        out += path.pop((i + 1) * 0.01)
    assert len(samples(out)) == 24000
    path.set_members([], 1.005)
    out += path.pop(1.005)  # one frame of silence pushes the rest of the filter out
    assert_heard(samples(out), voice, chunks, extra=1)
    assert samples(out)[24000:].any()
    assert path.pop(99.0) == [] and path.next_due() is None


def test_two_voices_are_mixed_at_their_rate_and_resampled_once() -> None:
    path = InboundPath(max_lag_ms=60)
    path.set_members(["a", "b"], 0.0)
    a, b = speech16(400), speech16(400, seed=2)
    out: list[bytes] = []
    for i, (ca, cb) in enumerate(zip(pieces(a, IN_FRAME), pieces(b, IN_FRAME), strict=True)):
        t = (i + 1) * 0.02
        path.push("a", ca, IN_RATE, t)
        path.push("b", cb, IN_RATE, t)
        out += path.pop(t)
    assert path.meeting_rate == IN_RATE
    got = samples(out).astype(np.int32)
    np.testing.assert_array_equal(got, heard_ref(a + b))  # (no sample reaches the limiter)
    separately = chunked_ref(pieces(a)).astype(np.int32) + chunked_ref(pieces(b))
    assert np.abs(got - separately).max() <= 2  # one rounding for each voice resampled alone


def test_a_hand_offs_frames_pushed_together_equal_them_pushed_one_by_one() -> None:
    """InboundPath.push_frames (the bridge's way: a hand-off's frames at once, the usual
    tick offered to the mixer without queueing) sends what push() frame by frame sends,
    through a voice at another rate and a member who stalls; and tells what it heard."""
    together, alone = InboundPath(max_lag_ms=60), InboundPath(max_lag_ms=60)
    for path in (together, alone):
        path.set_members(["a", "b"], 0.0)
    a, b = speech16(600), speech16(600, seed=2)
    t48 = np.arange(600 * 48) / 48000
    c = np.round(np.sin(2 * np.pi * 440 * t48) * 6000).astype(np.int16)
    sent: tuple[list[bytes], list[bytes]] = ([], [])
    for i in range(30):
        t = (i + 1) * 0.02
        frames = [("a", a[i * IN_FRAME : (i + 1) * IN_FRAME].tobytes(), IN_RATE, t)]
        if not 10 <= i < 13:  # b stalls for 60 ms
            frames.append(("b", b[i * IN_FRAME : (i + 1) * IN_FRAME].tobytes(), IN_RATE, t))
        if i >= 20:  # and then talks at 48 kHz (another device)
            frames[-1] = ("b", c[i * 960 : (i + 1) * 960].tobytes(), 48000, t)
        heard = together.push_frames(frames)
        assert [(pid, at) for pid, _, at in heard] == [(pid, at) for pid, _, _, at in frames]
        for pid, pcm, rate, at in frames:
            alone.push(pid, pcm, rate, at)
        sent[0].extend(together.pop(t))
        sent[1].extend(alone.pop(t))
    assert len(sent[0]) >= 25
    assert sent[0] == sent[1]


def test_a_voice_at_another_rate_is_resampled_to_the_meeting_rate_first() -> None:
    path = InboundPath(max_lag_ms=60)
    path.set_members(["a", "b"], 0.0)
    a = speech16(400)
    t48 = np.arange(400 * 48) / 48000
    b = np.round(np.sin(2 * np.pi * 440 * t48) * 6000).astype(np.int16)
    out: list[bytes] = []
    for i in range(20):
        t = (i + 1) * 0.02
        path.push("a", a[i * IN_FRAME : (i + 1) * IN_FRAME].tobytes(), IN_RATE, t)
        path.push("b", b[i * 960 : (i + 1) * 960].tobytes(), 48000, t)
        out += path.pop(t)
    assert path.meeting_rate == IN_RATE and len(out) == 20
    got = samples(out).astype(np.float64)
    alone = heard_ref(a).astype(np.float64)
    rest = got - alone  # b's 440 Hz tone, through two filters (48k -> 16k -> 24k)
    spectrum = np.abs(np.fft.rfft(rest[2400:] * np.hanning(rest.size - 2400)))
    peak_hz = np.argmax(spectrum) * 24000 / (rest.size - 2400)
    assert abs(peak_hz - 440) < 15


# ---------------------------------------------------------------------- through the bridge
class StubTransport(Transport):
    name = "stub"

    @property
    def bot_participant_id(self) -> str | None:
        return "bot"

    async def join(self, events: TransportEvents) -> None: ...

    async def leave(self) -> None: ...

    def write_audio(self, pcm: bytes) -> None: ...


class RecordingClient:
    """Stands in for the agent client: records every frame the bridge sends."""

    def __init__(self) -> None:
        from botrun.core.session import SessionState

        self.sent = bytearray()
        self.changed = asyncio.Event()
        self.state = SessionState({})  # the session the bridge asks (no reply under way)

    def send_audio(self, pcm: bytes) -> None:
        self.sent += pcm
        self.changed.set()

    async def until(self, nbytes: int, timeout: float = 5.0) -> np.ndarray:
        async def wait() -> None:
            while len(self.sent) < nbytes:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)
        return np.frombuffer(bytes(self.sent), dtype="<i2")


def bridge_with(client: RecordingClient, max_lag_ms: int = 60) -> Bridge:
    bridge = Bridge(StubTransport(), config_from_dict({"agent": {"greeting": ""}}))
    bridge.inbound._loop = asyncio.get_running_loop()
    bridge.inbound._inbound = InboundPath(max_lag_ms=max_lag_ms)
    bridge.client = client  # type: ignore[assignment]
    return bridge


def cancel_drain(bridge: Bridge) -> None:
    timer = getattr(bridge.inbound, "_drain_timer", None)  # a test must not leave it on the loop
    if timer is not None:
        timer.cancel()


async def talk(bridge: Bridge, pid: str, chunks: list[bytes]) -> None:
    for c in chunks:
        bridge.inbound._on_audio([(pid, c, IN_RATE, time.monotonic())])
        await asyncio.sleep(0)  # the loop's inbound batch sends right after (inbound_batch.py)


async def test_bridge_sends_a_sole_leavers_last_words_when_they_leave() -> None:
    client = RecordingClient()
    # max_lag 0.5 s: a loaded machine pausing this loop between two pieces must not force
    # a padded frame out mid-speech (that is the mixer's job, tested above)
    bridge = bridge_with(client, max_lag_ms=500)
    bridge._on_joined("a", "Ann")
    voice = speech16(1010)
    chunks = pieces(voice)
    await talk(bridge, "a", chunks)
    bridge._on_left("a", "hung up")
    expected = heard_ref(voice)
    got = await client.until(2 * len(expected), timeout=2.0)
    assert_heard(got, voice, chunks)


async def test_bridge_drains_a_stopped_speakers_tail_on_a_clock() -> None:
    client = RecordingClient()
    bridge = bridge_with(client, max_lag_ms=500)  # see above
    bridge._on_joined("a", "Ann")
    bridge._on_joined("b", "Bob")  # listened, never sends
    voice = speech16(1010)
    chunks = pieces(voice)
    await talk(bridge, "a", chunks)
    body = chunked_ref(chunks)
    # everything but the last half frame went out as it arrived, Bob's absence held nothing
    assert len(client.sent) == 2 * (len(body) - OUT_FRAME // 2)
    got = await client.until(2 * len(padded(body)))  # no new audio: the clock sends the tail
    assert_heard(got, voice, chunks)
    cancel_drain(bridge)


async def test_bridge_keepalive_silence_follows_the_tail_never_precedes_it() -> None:
    client = RecordingClient()
    # The mixer would hold the tail a long time (max_lag 10 s): the keep-alive, 300 ms after
    # the last audio, must send that tail first and only then silence.
    bridge = bridge_with(client, max_lag_ms=10_000)
    bridge._on_joined("a", "Ann")
    voice = speech16(1010)
    chunks = pieces(voice)
    await talk(bridge, "a", chunks)
    body = heard_ref(voice)
    watchdog = asyncio.create_task(bridge._watchdog())
    try:
        got = await client.until(2 * (len(body) + 3 * OUT_FRAME))
    finally:
        bridge._stop.set()
        await asyncio.wait_for(watchdog, 5.0)
        cancel_drain(bridge)
    assert_heard(got[: len(body)], voice, chunks)
    assert not got[len(body) :].any()
    assert len(got) % OUT_FRAME == 0


async def test_a_leave_never_overtakes_the_leavers_last_frames() -> None:
    """Frames and participant events from the transport's thread reach the loop in the
    order they were handed over: the leave comes after the last words, which are sent."""
    from botrun.core.handoff import Handoff

    client = RecordingClient()
    bridge = bridge_with(client, max_lag_ms=500)
    bridge._audio_in = Handoff(asyncio.get_running_loop(), bridge.inbound.on_handoff)
    bridge._on_joined("a", "Ann")
    voice = speech16(1010)
    chunks = pieces(voice)
    # computed first: it also designs the resampler's filter (once per process, slow), which
    # must not delay the frames below past the mixer's max_lag after their arrival stamps
    expected = heard_ref(voice)
    handoff = bridge._audio_in
    bridge.audio("a", chunks[0], IN_RATE)  # the hand-off's clock starts with the first frame
    while handoff.pending:
        await asyncio.sleep(0.001)
    assert handoff._inbox.ticking  # later frames wait for its next tick: no wake-up each
    for c in chunks[1:]:  # as the SDK thread does: audio(), then the leave
        bridge.audio("a", c, IN_RATE)
    bridge.participant_left("a", "hung up")
    got = await client.until(2 * len(expected), timeout=5.0)
    assert_heard(got, voice, chunks)
    cancel_drain(bridge)


async def test_an_odd_length_frame_costs_nothing_else_of_its_hand_off() -> None:
    """An odd-length frame from the transport used to raise in the speaker's energy, which
    dropped every later item of that hand-off tick: later frames and the leave."""
    from botrun.core.handoff import Handoff

    client = RecordingClient()
    bridge = bridge_with(client, max_lag_ms=500)
    bridge._audio_in = Handoff(asyncio.get_running_loop(), bridge.inbound.on_handoff)
    bridge._on_joined("a", "Ann")
    chunks = pieces(speech16(400))
    handoff = bridge._audio_in
    bridge.audio("a", chunks[0], IN_RATE)  # the first frame starts the hand-off's clock
    while handoff.pending:
        await asyncio.sleep(0.001)
    bridge.audio("a", chunks[1] + b"\x07", IN_RATE)  # odd: a stray byte
    for c in chunks[2:]:
        bridge.audio("a", c, IN_RATE)
    bridge.participant_left("a", "hung up")
    deadline = time.monotonic() + 5.0
    while "a" in bridge.roster and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert "a" not in bridge.roster, "the leave after the odd frame was lost"
    got = await client.until(2 * 24 * 380, timeout=5.0)  # nearly all 400 ms got through
    assert got.size >= 24 * 380
    cancel_drain(bridge)
