"""OutboundPacer: plays the bot's voice into a transport sink on its own real-time clock.

Why a thread and not the event loop: meeting SDKs need audio at a steady real-time rate, and
whatever has been handed to them cannot be taken back (Daily has no flush at all). If the
asyncio loop wrote the audio, any loop stall longer than the audio already inside the SDK
would be heard as a crackle, and writing far ahead to avoid that would leave seconds of stale
speech playing after a barge-in. So the pacer holds the reply in its own flushable queue and
a dedicated thread writes it out in fixed chunks (a whole number of 10 ms, default 20 ms),
keeping at most ``max_ahead`` chunks (default 2, i.e. 40 ms) inside the sink:

* the thread keeps its own model of the sink: the moment the audio written so far will have
  played out (``horizon``). It writes the next chunk once less than ``max_ahead`` chunks
  remain ahead of now. A sink that blocks in real time (Daily's ``write_frames`` returns
  after the chunk's duration) paces the thread by itself; a sink that returns at once
  (Agora's push) is paced by the model. Either way the same number of chunks is in flight;
* a new stream (the first audio after the sink ran dry, or after a flush) is held only as
  long as the sender's timing needs (adaptive pre-buffer). During each stream the pacer
  measures the sender's *deficit*: for every piece after the first, how much later it
  arrived than the audio before it would have run out had playback started the moment the
  stream began (a sender faster than real time has a negative deficit; one that paces in
  real time, like the simulator's 50 ms pieces, about zero plus its jitter). The next
  stream starts ``margin_ms`` after that deficit (never before its first audio, never
  later than ``prebuffer_ms``), or at once when ``prebuffer_ms`` is already queued. The
  first stream assumes a real-time sender (deficit 0). So a bursting TTS service starts at
  once, a real-time sender pays ``margin_ms`` (default 15), and a late, jittery sender
  gets the buffer it showed it needs, up to ``prebuffer_ms``. Audio that comes less than
  250 ms after the sink ran dry is the same stream arriving late: it is played at once
  (holding it would only lengthen the gap) and counted as an underrun;
* ``speed`` runs the clock model faster than real time (simulated meetings, tests);
* a final partial chunk is padded with silence, but only once the sink has run dry and no
  audio has arrived for a chunk's duration: a reply whose pieces arrive in odd sizes is not
  chopped up with padding;
* while nothing is queued the pacer writes nothing (no silence spam: Daily's custom track
  fills silence itself, Agora needs no keep-alive), so an idle bot costs no CPU;
* ``flush()`` (barge-in) drops the queue at once and calls ``flush_sink`` where the SDK has
  one; what can still be heard is what was already inside the sink, at most ``max_ahead``
  chunks;
* an exception from the sink is logged and counted; the thread keeps going;
* ``shared=True`` (for sinks that return at once, like Agora's push): no thread of its own;
  one :class:`PacerClock` thread per process writes for every shared pacer, each at the
  moment its own model says, rounded up to a 2 ms grid so that pacers due within the same
  2 ms are served in one wake-up. With 50 calls that is one thread waking at most 500 times
  a second instead of 50 threads waking 50 times a second each, all competing with the
  event loop for the GIL and the CPU. A sink that blocks would hold up every call: those
  keep a thread each (the default).

``put()``, ``flush()``, ``pending_ms`` and ``close()`` may be called from any thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .pcm import SAMPLE_WIDTH

log = logging.getLogger(__name__)

_LATE_S = 0.005  # a chunk written this long after the sink ran dry counts as an underrun
# Audio arriving less than this after the sink ran dry continues the stream (late: an
# underrun); later than that it starts a new stream (a new reply, held as above).
_RESUME_S = 0.25


@dataclass
class PacerStats:
    """Counters (read from any thread; written by the pacer thread and by ``flush``)."""

    written_chunks: int = 0
    written_ms: float = 0.0  # audio handed to the sink (what was spoken), padding not counted
    padded_ms: float = 0.0  # silence added to complete final partial chunks
    flushed_ms: float = 0.0  # audio dropped by flush() (never reached the sink)
    flushes: int = 0
    underruns: int = 0  # the sink ran dry while more of the same stream was coming (late
    # writes with audio queued, and audio arriving within 250 ms of the sink running dry)
    late_audio: int = 0  # of those, audio that arrived after the sink had run dry
    sink_errors: int = 0


_Job = tuple[bytes, list[Callable[[], None]], int, float]
_IDLE = object()
_CLOSED = object()
# A piece that makes a chunk due wakes the shared clock only if the sink would otherwise
# run dry within this long of its next wake-up (see PacerClock.schedule).
_SLACK_S = 0.005
_GRID_S = 0.002  # the shared clock serves pacers due within the same 2 ms in one wake-up


class OutboundPacer:
    """Real-time, flushable writer of PCM16 chunks into a transport sink (own thread)."""

    def __init__(
        self,
        sink: Callable[[bytes], object],
        sample_rate: int,
        chunk_ms: int = 20,
        max_ahead: int = 2,
        flush_sink: Callable[[], object] | None = None,
        name: str = "pacer",
        clock: Callable[[], float] = time.monotonic,
        prebuffer_ms: int = 0,
        speed: float = 1.0,
        margin_ms: int = 15,
        sample_width: int = SAMPLE_WIDTH,
        silence: bytes = b"\0",
        shared: bool = False,
    ) -> None:
        if chunk_ms <= 0 or chunk_ms % 10:
            raise ValueError(f"chunk_ms must be a positive multiple of 10, got {chunk_ms}")
        if max_ahead < 1:
            raise ValueError(f"max_ahead must be at least 1, got {max_ahead}")
        if sample_rate <= 0 or sample_rate % 100:
            raise ValueError(f"sample rate must be a positive multiple of 100 Hz: {sample_rate}")
        self.sink = sink
        self.flush_sink = flush_sink
        self.sample_rate = sample_rate
        self.chunk_ms = chunk_ms
        self.max_ahead = max_ahead
        self.name = name
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        # PCM16 (2 bytes a sample, silence 0) or G.711 μ-law (1 byte, silence 0xFF).
        self.sample_width = sample_width
        self._silence = silence
        self.chunk_bytes = sample_rate * chunk_ms // 1000 * sample_width
        self._chunk_s = chunk_ms / 1000 / speed
        self._speed = speed
        self._prebuffer_bytes = sample_rate * prebuffer_ms // 1000 * sample_width
        self._prebuffer_s = prebuffer_ms / 1000 / speed
        if margin_ms < 0:
            raise ValueError(f"margin_ms must be >= 0, got {margin_ms}")
        self._margin_s = margin_ms / 1000 / speed
        self._resume_s = _RESUME_S / speed
        self._playing = False  # a stream is playing: no pre-buffering until it runs dry
        self._stream_start = 0.0
        self._stream_audio_s = 0.0  # clock seconds of audio the current stream has received
        self._stream_deficit: float | None = None  # its worst deficit so far (see above)
        self._deficit = 0.0  # the last finished stream's worst deficit
        self._start_delay = min(self._margin_s, self._prebuffer_s)  # the current stream's hold
        self._bytes_per_ms = sample_rate * sample_width / 1000
        self._clock = clock
        self._cond = threading.Condition()
        self._sink_lock = threading.Lock()  # orders sink writes against flush_sink
        self._queue = bytearray()
        self._queue_start = 0  # absolute stream offset of _queue[0]
        self._markers: deque[tuple[int, Callable[[], None]]] = deque()  # (offset, on_start)
        self._generation = 0  # bumped by flush: a chunk taken before it is not written
        self._horizon = 0.0  # clock time at which everything written will have played
        self._last_put = 0.0
        self._continuing = False  # the last chunk written had more audio queued behind it
        self._closing = False
        self._drain = False
        self._thread: threading.Thread | None = None
        self._shared: PacerClock | None = None  # started on the process's clock thread
        self._want_shared = shared
        self._clock_at: float | None = None  # shared: its entry on the clock (clock's lock)
        self.stats = PacerStats()

    # -- public API -------------------------------------------------------------------

    def start(self) -> None:
        """Start the pacer thread (once), or join the process's clock thread (shared)."""
        if self._thread is not None or self._shared is not None:
            return
        if self._want_shared:
            self._shared = PacerClock.get()
            self._shared.poke(self)
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _notify(self) -> None:
        """Lock held: the writer should look again (own thread or the shared clock)."""
        if self._shared is not None:
            self._shared.poke(self)
        else:
            self._cond.notify()

    def put(self, pcm: bytes, on_start: Callable[[], None] | None = None) -> None:
        """Queue PCM16 for playback. Thread-safe.

        ``on_start`` is called on the pacer thread right before the chunk holding ``pcm``'s
        first sample is handed to the sink (it is dropped, never called, if that audio is
        flushed first). Empty ``pcm`` is ignored.
        """
        if len(pcm) % self.sample_width:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        if not pcm:
            return
        with self._cond:
            if self._closing:
                return
            now = self._clock()
            queued = len(self._queue)
            if (
                not queued
                and self._playing
                and self._horizon <= now < self._horizon + self._resume_s
            ):
                # The sink ran dry a moment ago: this is the same stream, late. Play it at
                # once (holding it now would only lengthen the gap); count the gap.
                self.stats.underruns += 1
                self.stats.late_audio += 1
                deficit = now - self._stream_start - self._stream_audio_s
                if self._stream_deficit is None or deficit > self._stream_deficit:
                    self._stream_deficit = deficit
            elif not queued and (not self._playing or now >= self._horizon):
                self._playing = False  # the sink ran dry long ago: this is a new stream
                self._new_stream(now)
            else:
                deficit = now - self._stream_start - self._stream_audio_s
                if self._stream_deficit is None or deficit > self._stream_deficit:
                    self._stream_deficit = deficit
            self._stream_audio_s += len(pcm) / self._bytes_per_ms / 1000 / self._speed
            if on_start is not None:
                self._markers.append((self._queue_start + queued, on_start))
            self._queue += pcm
            self._last_put = now
            # Wake the thread only when this audio can change what it waits for: idle, a
            # stream not started yet, or a partial chunk. A thread waiting to write the next
            # whole chunk on time has nothing new to do (one futex wake less per piece).
            if queued < self.chunk_bytes or not self._playing:
                if self._shared is not None:
                    wait = self._wait(now)
                    if wait is not None:
                        # due in ``wait``; no later than shortly before the sink runs dry
                        # (relative: the shared clock counts on its own clock, not ours)
                        lead = max(wait, self._horizon - _SLACK_S - now)
                        self._shared.schedule(self, wait, lead)
                else:
                    self._cond.notify()

    def _new_stream(self, now: float) -> None:
        """Start a new stream at ``now``: learn from the last one, set this one's hold."""
        if self._stream_deficit is not None:
            self._deficit = self._stream_deficit
        self._stream_deficit = None
        self._stream_start = now
        self._stream_audio_s = 0.0
        self._start_delay = min(self._prebuffer_s, max(0.0, self._deficit + self._margin_s))

    @property
    def start_delay_ms(self) -> float:
        """How long the current (or next) stream is held before its first write, in ms of
        the meeting's time (see the adaptive pre-buffer above)."""
        with self._cond:
            return self._start_delay * 1000 * self._speed

    def flush(self) -> float:
        """Drop everything queued (barge-in); call ``flush_sink`` if given.

        Returns the milliseconds of audio dropped. Audio already inside the sink (at most
        ``max_ahead`` chunks) still plays unless ``flush_sink`` removes it.
        """
        with self._cond:
            dropped = len(self._queue)
            self._queue_start += dropped
            self._queue.clear()
            self._markers.clear()
            self._generation += 1
            self._continuing = False
            self._playing = False
            ms = dropped / self._bytes_per_ms
            self.stats.flushed_ms += ms
            self.stats.flushes += 1
            self._notify()
        if self.flush_sink is not None:
            with self._sink_lock:
                try:
                    self.flush_sink()
                except Exception:
                    self.stats.sink_errors += 1
                    log.exception("%s: flush_sink failed", self.name)
        return ms

    def close(self, drain: bool = False, timeout: float = 2.0) -> None:
        """Stop the thread. With ``drain=True`` first play out what is queued (the final
        partial chunk padded), waiting at most ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._drain = drain
            if drain and (self._thread is not None or self._shared is not None):
                self._cond.notify_all()
                if self._shared is not None:
                    self._shared.poke(self)
                while self._queue and self._writer_alive():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            self._closing = True
            if self._queue or not drain:  # not drained: what was taken is not written
                self._queue_start += len(self._queue)
                self._queue.clear()
                self._markers.clear()
                self._generation += 1
            self._cond.notify_all()
        if self._shared is not None:
            self._shared.poke(self)  # it forgets a closing pacer
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))

    def _writer_alive(self) -> bool:
        if self._shared is not None:
            return self._shared.alive
        return self._thread is not None and self._thread.is_alive()

    @property
    def pending_ms(self) -> float:
        """Milliseconds of audio queued and not yet handed to the sink."""
        with self._cond:
            return len(self._queue) / self._bytes_per_ms

    @property
    def written_chunks(self) -> int:
        """Chunks handed to the sink so far."""
        return self.stats.written_chunks

    @property
    def underruns(self) -> int:
        """Times the sink ran dry while the same stream was still playing."""
        return self.stats.underruns

    @property
    def in_sink_ms(self) -> float:
        """Milliseconds written to the sink that (by the pacer's clock) have not played yet."""
        return max(0.0, self._horizon - self._clock()) * 1000

    # -- pacer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._next_chunk()
            if job is None:
                return
            chunk, callbacks, generation, audio_ms = job
            self._write(chunk, callbacks, generation, audio_ms)

    def _next_chunk(self) -> tuple[bytes, list[Callable[[], None]], int, float] | None:
        """Wait until a chunk is due and take it from the queue; None when closing."""
        with self._cond:
            while True:
                plan = self._plan(self._clock())
                if plan is _CLOSED:
                    return None
                if plan is _IDLE:
                    self._cond.wait()  # idle: write nothing until audio arrives
                elif isinstance(plan, float):
                    self._cond.wait(plan)
                else:
                    assert isinstance(plan, tuple)
                    return plan

    def _plan(self, now: float) -> _Job | float | object:
        """Lock held. The chunk to write now (taken from the queue), or how many seconds
        until one may be due, or ``_IDLE`` (nothing queued), or ``_CLOSED``."""
        if self._closing:
            return _CLOSED
        if self._queue and not self._playing:
            held = self._held(now)
            if held is not None:
                return held
            self._playing = True
        wait = self._wait(now)
        if wait is None:
            self._continuing = False
            return _IDLE
        if wait > 0:
            return float(wait)
        return self._take(now)

    def _held(self, now: float) -> float | None:
        """Lock held, a stream queued and not playing: the seconds its pre-buffer still
        holds it, or None when it may start."""
        ready_at = self._stream_start + self._start_delay
        if len(self._queue) < self._prebuffer_bytes and not self._drain and now < ready_at:
            return ready_at - now
        return None

    def _wait(self, now: float) -> float | None:
        """Lock held, no side effects: seconds until the next chunk is due (<= 0: now), or
        None when nothing is queued. :meth:`_plan` acts on it; :meth:`put` tells the shared
        clock with it."""
        queued = len(self._queue)
        if queued and not self._playing:
            held = self._held(now)
            if held is not None:
                return held
        if queued >= self.chunk_bytes:
            return self._horizon - (self.max_ahead - 1) * self._chunk_s - now
        if queued:  # a final partial chunk: only once the sink is dry and input idle
            return 0.0 if self._drain else max(self._horizon, self._last_put + self._chunk_s) - now
        return None

    def _serve(self) -> float | None:
        """Shared clock thread: write whatever is due now; in how many seconds to come
        back (None: idle or closed, until the next poke)."""
        while True:
            with self._cond:
                plan = self._plan(self._clock())
                if plan is _CLOSED or plan is _IDLE:
                    return None
                if isinstance(plan, float):
                    return plan
            assert isinstance(plan, tuple)
            self._write(*plan)

    def _take(self, now: float) -> _Job:
        """Cut the next chunk (padded if short), its on_start callbacks, the generation and
        the ms of real audio in it. Lock held."""
        cb = self.chunk_bytes
        chunk = bytes(self._queue[:cb])
        del self._queue[:cb]
        end = self._queue_start + len(chunk)
        self._queue_start = end
        audio_ms = len(chunk) / self._bytes_per_ms
        if len(chunk) < cb:
            self.stats.padded_ms += (cb - len(chunk)) / self._bytes_per_ms
            chunk += self._silence * (cb - len(chunk))
        callbacks = []
        while self._markers and self._markers[0][0] < end:
            callbacks.append(self._markers.popleft()[1])
        if self._continuing and now - self._horizon > _LATE_S:
            self.stats.underruns += 1
        self._continuing = bool(self._queue)
        if not self._queue:
            self._cond.notify_all()  # a draining close() may be waiting for this
        self._horizon = max(self._horizon, now) + self._chunk_s
        return chunk, callbacks, self._generation, audio_ms

    def _write(
        self, chunk: bytes, callbacks: list[Callable[[], None]], generation: int, audio_ms: float
    ) -> None:
        with self._sink_lock:
            if generation != self._generation:
                with self._cond:  # flushed between taking and writing: it never plays
                    self._horizon -= self._chunk_s
                return
            for callback in callbacks:
                try:
                    callback()
                except Exception:
                    log.exception("%s: on_start callback failed", self.name)
            try:
                self.sink(chunk)
            except Exception:
                self.stats.sink_errors += 1
                if self.stats.sink_errors == 1 or self.stats.sink_errors % 100 == 0:
                    log.exception(
                        "%s: sink write failed (%d so far)", self.name, self.stats.sink_errors
                    )
            else:
                self.stats.written_ms += audio_ms  # before the count others wait on
                self.stats.written_chunks += 1


class PacerClock:
    """One thread per process that writes for every shared :class:`OutboundPacer`: it
    sleeps until the earliest pacer is due (rounded up to a 2 ms grid), serves every pacer
    due by then, and sleeps again. Pacers poke it when their plans change (audio queued,
    a flush, close). Their sinks must not block: one that did would delay every call."""

    _instance: PacerClock | None = None
    _instance_lock = threading.Lock()

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._poked: set[OutboundPacer] = set()
        self._heap: list[tuple[float, int, OutboundPacer]] = []
        self._seq = itertools.count()
        self.wakeups = 0
        # when the thread next looks at the heap on its own (clock time; its lock): inf while
        # it waits for a poke, -inf while it is awake or already woken
        self._wake_at = -math.inf
        self._thread = threading.Thread(target=self._run, name="pacer-clock", daemon=True)
        self._thread.start()

    @classmethod
    def get(cls) -> PacerClock:
        """The process's clock thread (started on first use)."""
        with cls._instance_lock:
            if cls._instance is None or not cls._instance.alive:
                cls._instance = cls()
            return cls._instance

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def poke(self, pacer: OutboundPacer) -> None:
        """``pacer``'s plan may have changed: serve it at once (callable from any thread)."""
        with self._cond:
            if not self._poked:
                self._cond.notify()
            self._poked.add(pacer)

    def schedule(self, pacer: OutboundPacer, wait: float, lead: float) -> None:
        """``pacer`` has a chunk due in ``wait`` seconds, to be written within ``lead``
        seconds at the latest (callable from any thread). It is served at the thread's next
        wake-up after that; the thread is woken for it only if it would sleep past the
        ``lead``. A playing reply's next piece usually makes a chunk due while the sink
        still holds one: the wake-up due for some other call serves it (one futex wake and
        one thread switch less per piece)."""
        now = self._clock()
        at, latest = now + wait, now + lead
        with self._cond:
            if pacer._clock_at is None or at < pacer._clock_at:
                pacer._clock_at = at
                heapq.heappush(self._heap, (at, next(self._seq), pacer))
            if latest < self._wake_at:
                self._wake_at = -math.inf  # (one notify is enough until it looks again)
                self._cond.notify()

    def _run(self) -> None:
        heap = self._heap
        while True:
            with self._cond:
                while True:
                    now = self._clock()
                    if self._poked:
                        break
                    if heap:
                        # wake on the grid: pacers due within the same 2 ms share a wake-up
                        wake = math.ceil(heap[0][0] / _GRID_S) * _GRID_S
                        if wake <= now:
                            break
                        self._wake_at = wake
                        self._cond.wait(wake - now)
                    else:
                        self._wake_at = math.inf
                        self._cond.wait()
                    self._wake_at = -math.inf
                due = set(self._poked)
                self._poked.clear()
                limit = math.ceil(now / _GRID_S) * _GRID_S
                while heap and heap[0][0] <= limit:
                    at, _, pacer = heapq.heappop(heap)
                    if pacer._clock_at == at:  # (an entry superseded by an earlier one: skip)
                        pacer._clock_at = None
                        due.add(pacer)
                self.wakeups += 1
            for pacer in due:
                try:
                    wait = pacer._serve()
                except Exception:  # never let one call stop every other call's voice
                    log.exception("%s: pacer failed", pacer.name)
                    continue
                if wait is not None:
                    at = self._clock() + wait
                    with self._cond:
                        # one live entry per pacer: the earliest (a later one is superseded)
                        if pacer._clock_at is None or at < pacer._clock_at:
                            pacer._clock_at = at
                            heapq.heappush(heap, (at, next(self._seq), pacer))
