"""OutboundPacer: chunking, pacing model, flush, callbacks, loop stalls, sink errors, close.

Assertions are on the sequence and content of sink writes (every sample is numbered, so a
gap, a duplicate or inserted padding shows up), never on wall-clock thresholds."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from botrun.core.audio.pacer import OutboundPacer, PacerClock

RATE = 16000
CHUNK_MS = 20
CHUNK_BYTES = RATE * CHUNK_MS // 1000 * 2


def numbered(ms: int, first: int = 1) -> bytes:
    """``ms`` of PCM16 whose samples count up from ``first`` (never 0, so padding shows)."""
    n = RATE * ms // 1000
    return ((np.arange(first, first + n) - 1) % 30000 + 1).astype("<i2").tobytes()


class RecordingSink:
    """Records each write with the clock reading at the call; optionally blocks in real
    time like Daily's ``write_frames`` (a chunk returns after its duration)."""

    def __init__(self, blocking: bool = False, fail_on: set[int] | None = None) -> None:
        self.blocking = blocking
        self.fail_on = fail_on or set()
        self.writes: list[bytes] = []
        self.times: list[float] = []
        self.threads: set[str] = set()
        self.calls = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()

    def __call__(self, chunk: bytes) -> None:
        with self._lock:
            self.calls += 1
            call = self.calls
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            self.threads.add(threading.current_thread().name)
            self.times.append(time.monotonic())
            if call in self.fail_on:
                raise RuntimeError("sink exploded")
            self.writes.append(chunk)
            if self.blocking:
                time.sleep(len(chunk) / 2 / RATE)
        finally:
            with self._lock:
                self.concurrent -= 1

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


@pytest.fixture(params=[False, True], ids=["own-thread", "shared-clock"])
def make_pacer(request: pytest.FixtureRequest):
    """Every pacer test runs both ways: a thread of its own, and the process's one shared
    clock thread (``shared=True``; its sinks here may block too, one pacer at a time)."""
    pacers: list[OutboundPacer] = []

    def make(sink: Callable[[bytes], object], **kwargs) -> OutboundPacer:
        kwargs.setdefault("shared", request.param)
        pacer = OutboundPacer(sink, RATE, chunk_ms=CHUNK_MS, **kwargs)
        pacers.append(pacer)
        return pacer

    yield make
    for pacer in pacers:
        pacer.close()


@pytest.mark.parametrize("blocking", [False, True])
def test_fixed_chunks_contiguous_and_final_partial_padded(make_pacer, blocking: bool) -> None:
    sink = RecordingSink(blocking=blocking)
    pacer = make_pacer(sink)
    audio = numbered(110)
    pacer.put(audio[:1000])
    pacer.put(audio[1000:])
    pacer.start()
    wait_for(lambda: pacer.written_chunks == 6)
    assert all(len(w) == CHUNK_BYTES for w in sink.writes)
    assert sink.data == audio + bytes(6 * CHUNK_BYTES - len(audio))
    assert pacer.stats.padded_ms == pytest.approx(10)
    assert pacer.pending_ms == 0
    assert sink.max_concurrent == 1
    assert sink.threads == {"pacer-clock" if pacer._shared is not None else "pacer"}


def test_shared_pacers_are_written_by_one_thread_each_on_its_own_clock() -> None:
    """Several shared pacers: one thread writes them all, each stream whole and in
    order, each pacer's sink never holding more than its max_ahead chunks."""
    sinks = [RecordingSink() for _ in range(8)]
    pacers = [OutboundPacer(sink, RATE, chunk_ms=CHUNK_MS, shared=True) for sink in sinks]
    try:
        for i, pacer in enumerate(pacers):
            pacer.start()
            pacer.put(numbered(100 + 10 * i, first=1000 * i + 1))
        wait_for(lambda: all(p.pending_ms == 0 for p in pacers))
        wait_for(lambda: all(s.calls == 5 + (i + 1) // 2 for i, s in enumerate(sinks)))
        for i, sink in enumerate(sinks):
            audio = numbered(100 + 10 * i, first=1000 * i + 1)
            assert sink.data == audio + bytes(len(sink.data) - len(audio))
            assert sink.threads == {"pacer-clock"}
            # the sink's model: chunks at most max_ahead (2) chunk durations ahead of
            # real time from its first write
            t0 = sink.times[0]
            for k, t in enumerate(sink.times):
                assert t - t0 >= (k - 1) * CHUNK_MS / 1000 - 0.001
    finally:
        for pacer in pacers:
            pacer.close()


@pytest.mark.parametrize("max_ahead", [1, 2, 3])
def test_non_blocking_sink_never_holds_more_than_max_ahead_chunks(
    make_pacer, max_ahead: int
) -> None:
    in_sink: list[float] = []
    sink = RecordingSink(blocking=False)
    pacer: OutboundPacer | None = None

    def measuring_sink(chunk: bytes) -> None:
        assert pacer is not None
        in_sink.append(pacer.in_sink_ms)  # unplayed audio including this chunk
        sink(chunk)

    pacer = make_pacer(measuring_sink, max_ahead=max_ahead)
    pacer.put(numbered(200))
    pacer.start()
    wait_for(lambda: pacer.written_chunks == 10)
    assert max(in_sink) <= max_ahead * CHUNK_MS
    assert sink.data == numbered(200)


def test_idle_pacer_writes_nothing_until_audio_arrives(make_pacer) -> None:
    sink = RecordingSink()
    pacer = make_pacer(sink)
    pacer.start()
    time.sleep(0.1)
    assert sink.calls == 0  # no silence spam while idle
    pacer.put(numbered(40))
    wait_for(lambda: pacer.written_chunks == 2)
    time.sleep(0.06)
    assert sink.calls == 2


def test_flush_drops_the_queue_and_leaves_at_most_max_ahead_chunks(make_pacer) -> None:
    sink = RecordingSink(blocking=False)
    flushed: list[int] = []
    pacer = make_pacer(sink, max_ahead=2, flush_sink=lambda: flushed.append(sink.calls))
    audio = numbered(2000)
    pacer.put(audio)
    pacer.start()
    wait_for(lambda: pacer.written_chunks >= 5)
    in_sink = pacer.in_sink_ms
    dropped = pacer.flush()
    written_at_flush = len(sink.writes)
    assert in_sink <= 2 * CHUNK_MS  # what can still be heard after the barge-in
    # A chunk taken just before the flush is discarded unwritten: neither count has it.
    assert dropped + written_at_flush * CHUNK_MS == pytest.approx(2000, abs=CHUNK_MS)
    assert pacer.pending_ms == 0
    assert flushed == [written_at_flush]  # flush_sink ran after the last pre-flush write
    after = numbered(60, first=50000)
    pacer.put(after)
    wait_for(lambda: len(sink.writes) == written_at_flush + 3)
    assert sink.data == audio[: written_at_flush * CHUNK_BYTES] + after
    assert pacer.stats.flushed_ms == pytest.approx(dropped)


def test_on_start_fires_on_the_pacer_thread_as_the_first_sample_is_written(make_pacer) -> None:
    sink = RecordingSink()
    pacer = make_pacer(sink, name="bot-voice")
    seen: list[tuple[str, int, str]] = []

    def on_start(label: str) -> Callable[[], None]:
        return lambda: seen.append((label, sink.calls, threading.current_thread().name))

    pacer.put(numbered(30), on_start("a"))  # chunk 0 and half of chunk 1
    pacer.put(numbered(25, first=9000), on_start("b"))  # 30-55 ms: starts inside chunk 1
    pacer.put(numbered(20, first=20000), on_start("c"))  # 55-75 ms: starts inside chunk 2
    pacer.start()
    wait_for(lambda: pacer.written_chunks == 4)
    thread = "pacer-clock" if pacer._shared is not None else "bot-voice"
    assert seen == [("a", 0, thread), ("b", 1, thread), ("c", 2, thread)]


def test_on_start_of_flushed_audio_is_never_called(make_pacer) -> None:
    sink = RecordingSink()
    pacer = make_pacer(sink)
    called: list[str] = []
    pacer.put(numbered(40), lambda: called.append("first"))
    pacer.put(numbered(400), lambda: called.append("flushed"))
    pacer.flush()
    pacer.put(numbered(20), lambda: called.append("after"))
    pacer.start()
    wait_for(lambda: pacer.written_chunks == 1)
    time.sleep(0.05)
    assert called == ["after"]


async def test_event_loop_stall_does_not_starve_the_sink(make_pacer) -> None:
    sink = RecordingSink(blocking=True)  # like Daily's blocking write_frames
    pacer = make_pacer(sink)
    pacer.start()
    audio = numbered(600)
    # The agent's reply arrives faster than real time; the bridge puts it as it comes.
    for i in range(0, 400 * RATE // 1000 * 2, 3200):
        pacer.put(audio[i : i + 3200])
        await asyncio.sleep(0)
    written_before = pacer.written_chunks
    time.sleep(0.2)  # the event loop is blocked: nothing is put, nothing awaited
    written_during = pacer.written_chunks - written_before
    pacer.put(audio[400 * RATE // 1000 * 2 :])
    await asyncio.to_thread(wait_for, lambda: pacer.written_chunks == 30)
    assert written_during > 0  # the sink kept receiving while the loop was blocked
    assert sink.data == audio  # every chunk contiguous: no gap, no padding, no repeat
    assert pacer.stats.padded_ms == 0


def test_sink_exception_is_counted_and_the_thread_survives(make_pacer) -> None:
    sink = RecordingSink(fail_on={2})
    pacer = make_pacer(sink)
    audio = numbered(100)
    pacer.put(audio)
    pacer.start()
    wait_for(lambda: sink.calls == 5)
    assert pacer.stats.sink_errors == 1
    assert pacer.written_chunks == 4
    assert sink.data == audio[:CHUNK_BYTES] + audio[2 * CHUNK_BYTES :]


def test_a_sink_slower_than_real_time_counts_underruns(make_pacer) -> None:
    slow = RecordingSink(blocking=True)

    def sink(chunk: bytes) -> None:
        slow(chunk)
        time.sleep(0.03)  # 20 ms of audio takes 50 ms: the sink runs dry before each write

    pacer = make_pacer(sink)
    pacer.put(numbered(100))
    pacer.start()
    wait_for(lambda: len(slow.writes) == 5)
    assert pacer.underruns >= 3
    assert slow.data == numbered(100)


def test_close_with_drain_plays_out_the_queue(make_pacer) -> None:
    sink = RecordingSink(blocking=True)
    pacer = make_pacer(sink)
    audio = numbered(90)
    pacer.put(audio)
    pacer.start()
    pacer.close(drain=True, timeout=5.0)
    assert sink.data == audio + bytes(5 * CHUNK_BYTES - len(audio))
    pacer.put(numbered(20))  # ignored after close
    assert pacer.pending_ms == 0


def test_close_without_drain_drops_the_queue(make_pacer) -> None:
    sink = RecordingSink(blocking=True)
    pacer = make_pacer(sink)
    pacer.put(numbered(1000))
    pacer.start()
    wait_for(lambda: pacer.written_chunks >= 1)
    pacer.close(timeout=5.0)
    written = len(sink.writes)
    assert written < 50
    time.sleep(0.05)
    assert len(sink.writes) == written


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 10"):
        OutboundPacer(lambda _: None, RATE, chunk_ms=15)
    with pytest.raises(ValueError, match="max_ahead"):
        OutboundPacer(lambda _: None, RATE, max_ahead=0)
    pacer = OutboundPacer(lambda _: None, RATE)
    with pytest.raises(ValueError, match="even number"):
        pacer.put(b"\x00\x01\x02")


class SteppedClock:
    """A clock the test moves by hand, so the pacer's decisions do not depend on how the
    test's threads are scheduled. Each reading creeps 1 us forward: a pacer waiting for a
    moment its float arithmetic puts a hair after "now" still gets there."""

    def __init__(self) -> None:
        self.t = 100.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.t += 1e-6
            return self.t

    def advance(self, s: float) -> None:
        with self._lock:
            self.t += s


def test_prebuffer_holds_a_new_stream_until_enough_is_queued(make_pacer) -> None:
    """A sender pacing 50 ms pieces in real time: with a 100 ms hold (margin_ms as large
    as the pre-buffer) the first write waits for the second piece, and the stream then
    plays out with no padding inserted.

    The clock is stepped by the test, 5 ms at a time, and each step waits until the pacer
    has written what is due (a real-time sender late by 50 ms on a loaded machine would
    rightly let the pre-buffer's time limit start the stream first, or run the sink dry).
    "No write yet" is checked after giving the pacer thread a chance to write; it waits on
    the clock, so that pause cannot turn a correct pacer into a failure."""
    clock = SteppedClock()
    sink = RecordingSink()
    pacer = make_pacer(sink, max_ahead=2, prebuffer_ms=100, margin_ms=100, clock=clock)
    pacer.start()
    audio = numbered(300)
    piece = len(audio) // 6

    def caught_up() -> bool:  # nothing due: under a chunk queued, or over one in the sink
        return pacer.pending_ms < CHUNK_MS or pacer.in_sink_ms > CHUNK_MS

    pacer.put(audio[:piece])
    clock.advance(0.045)
    time.sleep(0.05)
    assert sink.calls == 0  # 50 ms queued, 45 ms passed: held
    clock.advance(0.005)
    pacer.put(audio[piece : 2 * piece])
    wait_for(lambda: sink.calls >= 1)  # 100 ms queued: it starts without waiting longer
    for step in range(1, 4 * 10 + 20):  # the rest in real time, 50 ms per piece
        clock.advance(0.005)
        if step % 10 == 0 and step // 10 < 5:
            k = 1 + step // 10
            pacer.put(audio[k * piece : (k + 1) * piece])
        wait_for(caught_up)
    pacer.close(drain=True, timeout=5.0)
    assert sink.data == audio
    assert pacer.stats.padded_ms == 0


def test_prebuffer_time_limit_starts_a_short_stream(make_pacer) -> None:
    """A stream that never fills the pre-buffer starts once its hold has passed (here the
    whole pre-buffer: margin_ms as large)."""
    clock = SteppedClock()
    sink = RecordingSink()
    pacer = make_pacer(sink, prebuffer_ms=100, margin_ms=100, clock=clock)
    pacer.start()
    pacer.put(numbered(40))
    clock.advance(0.098)
    time.sleep(0.05)
    assert sink.calls == 0  # 40 ms queued, 98 ms passed: held
    clock.advance(0.002)
    wait_for(lambda: sink.calls == 2)
    assert sink.data == numbered(40)


def test_partial_chunk_waits_for_more_audio_until_the_sink_runs_dry(make_pacer) -> None:
    """A partial chunk is held while the sink still plays and audio came in less than a
    chunk's time ago (a reply arriving in odd sizes is not chopped up with padding); once
    both have passed it is padded and written."""
    clock = SteppedClock()
    sink = RecordingSink()
    pacer = make_pacer(sink, clock=clock)
    pacer.start()
    pacer.put(numbered(30))  # chunk 1 is written at once; 10 ms are left over
    wait_for(lambda: sink.calls == 1)
    clock.advance(0.018)  # chunk 1 is still playing
    time.sleep(0.05)
    assert sink.calls == 1
    pacer.put(numbered(10, first=481))  # the rest of chunk 2 arrives: written whole
    wait_for(lambda: sink.calls == 2)
    assert sink.data == numbered(40) and pacer.stats.padded_ms == 0
    pacer.put(numbered(10, first=641))  # 10 ms more; chunk 2 plays for ~20 ms
    clock.advance(0.018)
    time.sleep(0.05)
    assert sink.calls == 2  # the sink is not dry yet: held
    clock.advance(0.005)  # dry, and more than a chunk's time since the last audio
    wait_for(lambda: sink.calls == 3)
    assert sink.data == numbered(50) + bytes(CHUNK_BYTES // 2)
    assert pacer.stats.padded_ms == pytest.approx(10)


# -- adaptive pre-buffer: the hold of a new stream follows the sender's timing -------------
# put() measures the deficits and sets the next stream's hold; flush() ends a stream, so
# these need no pacer thread and run entirely on the stepped clock.


def stream(pacer: OutboundPacer, clock: SteppedClock, arrivals_ms: list[float], ms: int) -> None:
    """One stream: pieces of ``ms`` arriving at ``arrivals_ms`` (from its start), then a
    barge-in ends it."""
    t = 0.0
    for at in arrivals_ms:
        clock.advance((at - t) / 1000)
        t = at
        pacer.put(numbered(ms))
    pacer.flush()


def test_the_first_stream_assumes_a_real_time_sender_and_holds_only_the_margin() -> None:
    pacer = OutboundPacer(
        RecordingSink(), RATE, prebuffer_ms=60, margin_ms=15, clock=SteppedClock()
    )
    assert pacer.start_delay_ms == pytest.approx(15)


def test_a_sender_faster_than_real_time_makes_the_next_stream_start_at_once() -> None:
    clock = SteppedClock()
    pacer = OutboundPacer(RecordingSink(), RATE, prebuffer_ms=60, margin_ms=15, clock=clock)
    stream(pacer, clock, [0, 1, 2, 3, 4], ms=40)  # 200 ms of audio within 4 ms
    pacer.put(numbered(40))
    assert pacer.start_delay_ms == 0


def test_a_real_time_sender_is_held_for_its_jitter_plus_the_margin() -> None:
    clock = SteppedClock()
    pacer = OutboundPacer(RecordingSink(), RATE, prebuffer_ms=60, margin_ms=15, clock=clock)
    stream(pacer, clock, [0, 50, 104, 150], ms=50)  # the third piece 4 ms late
    pacer.put(numbered(50))
    assert pacer.start_delay_ms == pytest.approx(19, abs=0.1)


def test_a_late_sender_is_held_at_most_the_pre_buffer() -> None:
    clock = SteppedClock()
    pacer = OutboundPacer(RecordingSink(), RATE, prebuffer_ms=60, margin_ms=15, clock=clock)
    stream(pacer, clock, [0, 60, 120, 180], ms=20)  # 20 ms every 60 ms: 120 ms behind
    pacer.put(numbered(20))
    assert pacer.start_delay_ms == pytest.approx(60)
    stream(pacer, clock, [0, 1], ms=100)  # it caught up: the next hold shrinks again
    pacer.put(numbered(20))
    assert pacer.start_delay_ms == 0


def test_prebuffer_zero_never_holds() -> None:
    clock = SteppedClock()
    pacer = OutboundPacer(RecordingSink(), RATE, prebuffer_ms=0, margin_ms=15, clock=clock)
    assert pacer.start_delay_ms == 0
    stream(pacer, clock, [0, 80, 160], ms=20)
    pacer.put(numbered(20))
    assert pacer.start_delay_ms == 0


def test_a_real_time_stream_starts_after_the_margin_and_plays_without_gaps(make_pacer) -> None:
    """The simulator's timing (50 ms pieces in real time), first stream: the first write
    comes margin_ms after the first piece (not after a second piece or the whole
    pre-buffer), and the stream plays out whole, with no padding and no underrun."""
    clock = SteppedClock()
    sink = RecordingSink()
    pacer = make_pacer(sink, max_ahead=2, prebuffer_ms=60, margin_ms=15, clock=clock)
    pacer.start()
    audio = numbered(300)
    piece = len(audio) // 6

    def caught_up() -> bool:
        return pacer.pending_ms < CHUNK_MS or pacer.in_sink_ms > CHUNK_MS

    pacer.put(audio[:piece])
    clock.advance(0.010)
    time.sleep(0.05)
    assert sink.calls == 0  # 10 ms of its 15 ms hold
    for step in range(1, 4 * 10 + 20):  # 5 ms steps
        clock.advance(0.005)
        if step % 10 == 8 and step // 10 < 5:  # 50 ms after the previous piece
            k = 1 + step // 10
            pacer.put(audio[k * piece : (k + 1) * piece])
        if step == 1:
            wait_for(lambda: sink.calls >= 1)  # 15 ms: it started
        wait_for(caught_up)
    pacer.close(drain=True, timeout=5.0)
    assert sink.data == audio
    assert pacer.stats.padded_ms == 0
    assert pacer.underruns == 0


def test_audio_arriving_just_after_the_sink_ran_dry_continues_the_stream_at_once(
    make_pacer,
) -> None:
    """A late piece of a playing stream is written at once and counted as an underrun; it
    is not held like a new stream (that would lengthen the gap). Audio arriving long after
    the sink ran dry is a new stream and is held again."""
    clock = SteppedClock()
    sink = RecordingSink()
    pacer = make_pacer(sink, max_ahead=2, prebuffer_ms=60, margin_ms=15, clock=clock)
    pacer.start()
    pacer.put(numbered(40))
    clock.advance(0.015)  # the hold
    wait_for(lambda: sink.calls == 2)
    clock.advance(0.040 + 0.010)  # both chunks played, then 10 ms of silence
    time.sleep(0.05)
    pacer.put(numbered(20, first=641))  # the stream's next piece, late
    wait_for(lambda: sink.calls == 3)  # written without a new hold (the clock stood still)
    assert pacer.underruns == 1 and pacer.stats.late_audio == 1
    assert sink.data == numbered(60)
    clock.advance(0.020 + 0.300)  # played; the sink has been dry for 300 ms
    pacer.put(numbered(20, first=961))
    time.sleep(0.05)
    # a new stream, held: the last one's second piece came 65 ms after its start with 40 ms
    # before it (a 25 ms deficit), plus the 15 ms margin
    assert sink.calls == 3
    assert pacer.start_delay_ms == pytest.approx(40, abs=0.1)
    clock.advance(0.040)
    wait_for(lambda: sink.calls == 4)
    assert pacer.underruns == 1


def test_written_ms_counts_audio_that_reached_the_sink_not_padding_or_flushed(
    make_pacer,
) -> None:
    # 400 ms flushed before the pacer runs; then 70 ms: three full chunks and a 10 ms tail
    # padded to a fourth
    sink = RecordingSink()
    pacer = make_pacer(sink)
    pacer.put(numbered(400))
    pacer.flush()
    pacer.put(numbered(70))
    pacer.start()
    wait_for(lambda: pacer.written_chunks == 4)
    assert pacer.stats.written_ms == pytest.approx(70.0)
    assert pacer.stats.padded_ms == pytest.approx(10.0)
    assert sum(len(w) for w in sink.writes) == 4 * CHUNK_BYTES


class _ServedPacer:
    """What the shared clock needs of a pacer: records when it was served."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._clock_at: float | None = None
        self.served = threading.Event()

    def _serve(self) -> float | None:
        self.served.set()
        return None


def test_shared_clock_is_woken_only_when_it_would_come_too_late() -> None:
    """PacerClock.schedule: a chunk due now whose sink still holds audio past the clock's
    next wake-up waits for that wake-up (no extra thread switch); one whose sink would run
    dry first wakes the clock at once. (The clock reads a fake time that stands still, so
    the thread's next wake-up is 100 s of real time away: no race with it.)"""

    clock = PacerClock(clock=lambda: 0.0)
    try:
        first = _ServedPacer("first")  # puts the thread to sleep until t = 100 s
        clock.schedule(first, 100.0, 100.0)  # type: ignore[arg-type]
        wait_for(lambda: clock._wake_at == 100.0)
        relaxed = _ServedPacer("relaxed")  # due now, its sink holds audio for 150 s
        clock.schedule(relaxed, 0.0, 150.0)  # type: ignore[arg-type]
        assert not relaxed.served.wait(0.3)
        assert clock._wake_at == 100.0  # still asleep: nothing woke it
        urgent = _ServedPacer("urgent")  # due now, its sink runs dry in 4 ms
        clock.schedule(urgent, 0.0, 0.004)  # type: ignore[arg-type]
        assert urgent.served.wait(5.0)
        assert relaxed.served.wait(5.0)  # the same wake-up serves what was due by then
        assert not first.served.is_set()
    finally:
        clock.poke(_ServedPacer("last"))  # type: ignore[arg-type]


def test_a_shared_pacer_on_its_own_clock_is_served_on_the_shared_clocks_time() -> None:
    """A shared pacer whose clock reads another time scale than the shared clock thread's
    (here 1000 s ahead) tells it relative times: everything is written, in order. (Told
    its own absolute times, the thread slept until then: nothing was written.)"""
    sink = RecordingSink(blocking=False)
    pacer = OutboundPacer(
        sink,
        RATE,
        chunk_ms=CHUNK_MS,
        shared=True,
        prebuffer_ms=60,  # a short stream is held for its margin: due a moment from now
        clock=lambda: time.monotonic() + 1000.0,
    )
    audio = numbered(40)
    try:
        pacer.start()
        shared = PacerClock.get()
        wait_for(lambda: not shared._poked and shared._wake_at != -math.inf)  # asleep again
        pacer.put(audio)
        wait_for(lambda: pacer.written_chunks == 2)
        assert sink.data == audio
    finally:
        pacer.close()


@pytest.mark.parametrize(
    ("module", "cls", "blocks"),
    [
        ("botrun.transports.agora.transport", "AgoraTransport", False),
        ("botrun.transports.twilio.transport", "TwilioTransport", False),
        ("botrun.transports.browser.transport", "BrowserTransport", False),
        ("botrun.transports.daily.transport", "DailyTransport", True),
    ],
)
def test_sinks_that_return_at_once_put_their_pacers_on_the_shared_clock(
    module: str, cls: str, blocks: bool
) -> None:
    """Agora's push, Twilio's and the browser's hand-off to the loop return at once: their
    calls' pacers share the process's clock thread (core/routing.py starts the pacer with
    ``shared=not write_blocks``). Daily's write_frames blocks in real time: a thread each."""
    import importlib

    transport = getattr(importlib.import_module(module), cls)
    assert transport.write_blocks is blocks
