"""Mixer: sums several participants' PCM16 streams into one, time-aligned, without clipping
artefacts.

The agent hears one audio stream, but a meeting has several people. Each participant's
audio arrives from the SDK on its own schedule (10 or 20 ms pieces, sometimes late, sometimes
in bursts), already resampled to the mixer's rate. The mixer keeps one queue per participant
and emits fixed frames:

* a frame is emitted as soon as every *present* participant has a full frame queued, so with
  everyone's audio flowing the mixer adds no latency beyond one frame. A participant is
  present once its audio flows; one that has not sent anything yet (joined muted, a track
  that never started) or whose audio stopped is *absent* and holds nobody back;
* if a present participant's audio stops (muted without comfort noise, network stall, SDK
  hiccup), the others are held back at most ``max_lag_ms`` once: when the oldest queued
  audio is that old, a frame is emitted with the missing participant counted as silence,
  and from then on that participant is absent until its audio flows again;
* the mixer drains on a clock, not only when audio arrives: :meth:`Mixer.next_due` says when
  queued audio becomes due without any new input (the caller schedules a :meth:`Mixer.pop`
  for then), so the last partial frame of an utterance is emitted, padded with silence,
  ``max_lag_ms`` after it arrived, and :meth:`Mixer.drain` emits everything still queued
  at once (before keep-alive silence, so silence is never spliced in front of a tail);
* a participant that resumes after such a gap, or joins late, is aligned by arrival time:
  its first sample is placed next to the other participants' audio that arrived at the same
  moment (silence fills the queued audio that arrived before it; audio older than anything
  the others still hold is dropped), so voices keep their real timing. Pieces are taken to
  end at their arrival time. Any later backlog that puts one voice more than ``max_lag_ms``
  (plus a frame) behind the others is trimmed from its oldest end (counted in
  :attr:`Mixer.stats`), because a permanent delay on one voice is worse than a short gap;
* a leaver's queued audio is still mixed (it no longer holds frames back; with nobody
  present it is emitted at once, padded), then the participant is forgotten.

Summing is done in int32 and passed through a static soft limiter: below 0.75 of full scale
samples are untouched (a lone speaker passes bit-exact), above it a tanh knee bends the
curve smoothly towards full scale, so loud overlapping voices never wrap around and never
hard-clip. Not thread-safe: call it from one thread (the bridge's event loop).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .pcm import SAMPLE_WIDTH, OddByteCarry

log = logging.getLogger(__name__)

FULL_SCALE = 32767
KNEE = 24576  # 0.75 of full scale: the soft limiter leaves everything below untouched
_MIN = np.minimum.reduce  # the ufuncs themselves: no Python wrapper per frame
_MAX = np.maximum.reduce


def soft_limit(total: np.ndarray) -> np.ndarray:
    """Map an int32 sum of PCM16 streams into int16 range without wrap-around or hard clip.

    Identity up to ``KNEE``; above it ``KNEE + (FS - KNEE) * tanh((|x| - KNEE) / (FS - KNEE))``,
    which is continuous with slope 1 at the knee and approaches full scale asymptotically.
    """
    mag = np.abs(total)
    loud = mag > KNEE
    if not loud.any():
        return total.astype(np.int16)
    span = FULL_SCALE - KNEE
    out = total.astype(np.float64)
    bent = KNEE + span * np.tanh((mag[loud] - KNEE) / span)
    out[loud] = np.sign(out[loud]) * bent
    return np.rint(out).astype(np.int16)


@dataclass
class MixerStats:
    """Counters for metrics and debugging."""

    frames: int = 0  # frames emitted
    forced_frames: int = 0  # emitted because someone's audio was late (counted as silence)
    limited_samples: int = 0  # samples the soft limiter bent
    trimmed_ms: float = 0.0  # backlog dropped to keep a resumed participant aligned


@dataclass(slots=True)
class _Track:
    """One participant's queue: bytes plus the arrival time of each pushed piece."""

    buf: bytearray = field(default_factory=bytearray)
    # (start offset, end offset, arrival time) of each pushed piece, in stream bytes
    arrivals: deque[tuple[int, int, float]] = field(default_factory=deque)
    consumed: int = 0  # absolute byte offset of buf[0] in this participant's stream
    carry: OddByteCarry = field(default_factory=OddByteCarry)
    leaving: bool = False
    # Absent: no place on the timeline (new, or counted as silence after its audio stopped);
    # holds no frames back until it sends again.
    starved: bool = True

    def oldest_arrival(self) -> float | None:
        """Arrival time of the oldest byte still queued, or None when empty."""
        while self.arrivals and self.arrivals[0][1] <= self.consumed:
            self.arrivals.popleft()
        return self.arrivals[0][2] if self.buf and self.arrivals else None

    def first_capture_time(self, rate: int) -> float | None:
        """Capture time of the oldest queued sample; a piece that arrived at ``t`` holding
        ``n`` samples is taken to cover ``[t - n/rate, t)``."""
        for start, end, arrived in self.arrivals:
            if end > self.consumed:
                return arrived - (end - max(start, self.consumed)) / SAMPLE_WIDTH / rate
        return None

    def take(self, nbytes: int) -> bytes:
        """Remove and return up to ``nbytes`` from the front of the queue."""
        buf = self.buf
        if nbytes >= len(buf):  # the common case: the queue holds exactly one frame
            chunk = bytes(buf)
            buf.clear()
            self.arrivals.clear()  # nothing queued: no arrival left to remember
        else:
            with memoryview(buf) as view:  # one copy, not a bytearray slice and a copy of it
                chunk = bytes(view[:nbytes])
            del buf[:nbytes]
        self.consumed += len(chunk)
        arrivals = self.arrivals
        while arrivals and arrivals[0][1] <= self.consumed:  # pieces taken whole
            arrivals.popleft()
        return chunk


class Mixer:
    """Time-aligned mix of several participants at one rate; see the module docstring."""

    def __init__(self, sample_rate: int = 24000, frame_ms: int = 20, max_lag_ms: int = 60) -> None:
        if sample_rate <= 0 or frame_ms <= 0 or max_lag_ms < 0:
            raise ValueError("sample_rate and frame_ms must be positive, max_lag_ms >= 0")
        if sample_rate * frame_ms % 1000:
            raise ValueError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.max_lag_ms = max_lag_ms
        self.frame_bytes = sample_rate * frame_ms // 1000 * SAMPLE_WIDTH
        self._max_lag_s = max_lag_ms / 1000
        self._max_lag_bytes = sample_rate * max_lag_ms // 1000 * SAMPLE_WIDTH
        self._trim_above = self._max_lag_bytes + self.frame_bytes  # see _trim_backlog
        self._tracks: dict[str, _Track] = {}
        # One whole frame from every participant, offered together into empty queues
        # (:meth:`offer`) and not queued: (pid, PCM, arrival time) each; the next pop
        # returns it as is, anything else queues it first (:meth:`_settle`).
        self._offered: list[tuple[str, bytes, float]] | None = None
        self.stats = MixerStats()

    @property
    def participants(self) -> list[str]:
        """Ids currently mixed (including leavers whose audio is still queued)."""
        return list(self._tracks)

    def add(self, pid: str) -> None:
        """Start mixing ``pid``; its first audio is lined up by capture time (see above)."""
        if self._offered is not None:
            self._settle()
        track = self._tracks.get(pid)
        if track is None:
            self._tracks[pid] = _Track()
        else:
            track.leaving = False

    def remove(self, pid: str) -> None:
        """Stop waiting for ``pid``: its queued audio is mixed, then it is forgotten."""
        if self._offered is not None:
            self._settle()
        track = self._tracks.get(pid)
        if track is None:
            return
        if track.buf:
            track.leaving = True
        else:
            del self._tracks[pid]

    def push(self, pid: str, pcm: bytes, now: float) -> None:
        """Queue PCM16 from ``pid`` that arrived at ``now`` (``time.monotonic()``).

        An unknown id is added first; a trailing odd byte is held for the next push.
        """
        if self._offered is not None:
            self._settle()
        track = self._tracks.get(pid)
        if track is None or track.leaving:
            self.add(pid)
            track = self._tracks[pid]
        data = track.carry.feed(pcm)
        if not data:
            return
        if track.starved and not track.buf:
            offset = self._alignment(track, now - len(data) / SAMPLE_WIDTH / self.sample_rate)
            if offset > 0:  # others hold audio captured before this: silence fills the gap
                track.buf += bytes(offset)
                track.arrivals.append((track.consumed, track.consumed + offset, now))
            elif offset < 0:  # a burst reaching back before what the others still hold
                drop = min(-offset, len(data))
                data = data[drop:]
                track.consumed += drop
                self.stats.trimmed_ms += drop / SAMPLE_WIDTH * 1000 / self.sample_rate
                if not data:
                    return
        track.starved = False
        start = track.consumed + len(track.buf)
        track.buf += data
        track.arrivals.append((start, start + len(data), now))

    def offer(self, frames: list[tuple[str, bytes, float]]) -> bool:
        """Audio that arrived together, ``(pid, PCM16, arrival time)`` each, if it is the
        usual tick: exactly one whole frame from each participant, every one of them
        present with nothing queued. Then the frame is due at once and :meth:`pop_pieces`
        returns it without queueing and taking every piece; True. Otherwise nothing is
        done (False): :meth:`push` each piece."""
        tracks = self._tracks
        if self._offered is not None or len(frames) != len(tracks):
            return False
        fb = self.frame_bytes
        for pid, pcm, _ in frames:
            t = tracks.get(pid)
            if t is None or len(pcm) != fb or t.buf or t.starved or t.leaving or t.carry.held:
                return False
        if len(frames) > 1 and len({pid for pid, _, _ in frames}) != len(frames):
            return False  # someone twice: queue it
        self._offered = frames
        return True

    def _settle(self) -> None:
        """Queue an offered frame after all (something other than the next pop came)."""
        offered, self._offered = self._offered, None
        for pid, pcm, arrived in offered or ():
            self.push(pid, pcm, arrived)

    @property
    def queued(self) -> bool:
        """Whether any audio is waiting to be mixed."""
        if self._offered is not None:
            return True
        return any(t.buf for t in self._tracks.values())

    @property
    def present(self) -> bool:
        """Whether anyone's audio is flowing (a member who is neither absent nor leaving)."""
        return any(not t.starved and not t.leaving for t in self._tracks.values())

    def next_due(self) -> float | None:
        """When queued audio becomes due without any new input (the time to call
        :meth:`pop` again), or None when nothing is queued. Meant to be called right after
        :meth:`pop`, which has already emitted whatever was due then."""
        if self._offered is not None:
            self._settle()
        oldest: float | None = None
        for t in self._tracks.values():  # (runs after every frame: no lists)
            if t.buf:
                arrived = t.oldest_arrival()
                if arrived is not None and (oldest is None or arrived < oldest):
                    oldest = arrived
        return None if oldest is None else oldest + self._max_lag_s

    def drain(self) -> list[bytes]:
        """Emit everything still queued now, the last frame padded with silence; whoever is
        short of audio counts as silence and becomes absent (as after ``max_lag_ms``)."""
        return self.pop(float("inf"))

    def pop(self, now: float) -> list[bytes]:
        """Return every mixed frame that is due at ``now`` (possibly none)."""
        return [self.mix(pieces) for pieces in self.pop_pieces(now)]

    def pop_pieces(self, now: float) -> list[list[bytes]]:
        """What :meth:`pop` would mix, unmixed: for every frame due at ``now``, the queued
        pieces of the participants in it (each at most a frame; shorter ones are silence at
        the end). :meth:`mix` turns one into the frame; ``core/inbound_batch.py`` mixes
        those of many calls at once."""
        fb = self.frame_bytes
        tracks = self._tracks
        offered = self._offered
        if offered is not None:  # nothing else is queued (see offer), nothing else is due
            self._offered = None
            for pid, _, _ in offered:
                tracks[pid].consumed += fb
            self.stats.frames += 1
            return [[pcm for _, pcm, _ in offered]]
        # The usual tick first: everyone whose audio flows has exactly one frame queued,
        # nobody is leaving; that frame is due, and nothing is left after it.
        full: list[_Track] = []
        for t in tracks.values():
            n = len(t.buf)
            if n == fb and not t.leaving:
                full.append(t)
            elif n or t.leaving or not t.starved:
                break  # anything else: the general pass below
        else:
            if full:
                self.stats.frames += 1
                return [[t.take(fb) for t in full]]
        frames: list[list[bytes]] = []
        trim_above = self._trim_above
        while True:
            # one pass over the tracks (this runs for every frame): who has audio queued,
            # whether a present one is short of a frame, a backlog, a leaver
            queued: list[_Track] = []
            short = backlog = leaving = False
            for t in tracks.values():
                n = len(t.buf)
                if n:
                    queued.append(t)
                if t.leaving:
                    leaving = True
                elif n < fb:
                    # Only present participants hold a frame back; with none (absent or
                    # leaving only), what is queued plays out at once.
                    short = short or not t.starved
                elif n > trim_above:
                    backlog = True
            if not queued:
                break
            if short:
                arrivals = [t.oldest_arrival() for t in queued]
                oldest = min(a for a in arrivals if a is not None)
                if now < oldest + self._max_lag_s:  # the very sum next_due() returns
                    break
                self.stats.forced_frames += 1
                for t in tracks.values():
                    if not t.leaving and len(t.buf) < fb:
                        t.starved = True
            if backlog:  # a queue longer than max_lag plus a frame
                active = [t for t in tracks.values() if not t.leaving]
                if len(active) > 1:
                    self._trim_backlog(active)
            self.stats.frames += 1
            frames.append([t.take(fb) for t in queued])
            if leaving:
                for pid in [p for p, t in tracks.items() if t.leaving and not t.buf]:
                    del tracks[pid]
        return frames

    def _alignment(self, track: _Track, when: float) -> int:
        """Where a (re)starting participant's first audio, captured at ``when``, goes: the
        signed distance in bytes from the start of the other talking participants' queues
        (their most recent queue start). Positive: queue that much silence first; negative:
        that much of the new audio is older than anything still queued and is dropped."""
        starts = [
            t.first_capture_time(self.sample_rate)
            for t in self._tracks.values()
            if t is not track and not t.leaving and not t.starved and t.buf
        ]
        known = [s for s in starts if s is not None]
        if not known:
            return 0
        return round((when - max(known)) * self.sample_rate) * SAMPLE_WIDTH

    def _trim_backlog(self, active: list[_Track]) -> None:
        """Drop the oldest audio of a participant whose queue is more than ``max_lag`` (plus
        one frame) longer than every other non-empty active queue: that backlog is a burst
        delivered after a stall, and mixing it would delay this voice for good. Queues are
        only compared with queues that hold audio, so a silent participant never causes a
        talking one to be trimmed."""
        lengths = [len(t.buf) for t in active]
        for i, track in enumerate(active):
            others = [n for j, n in enumerate(lengths) if j != i and n]
            if not others:
                continue
            excess = len(track.buf) - max(others) - self._max_lag_bytes - self.frame_bytes
            if excess > 0:
                excess -= excess % SAMPLE_WIDTH
                track.take(excess)
                self.stats.trimmed_ms += excess / SAMPLE_WIDTH * 1000 / self.sample_rate
                log.debug("mixer: trimmed %d bytes of stale backlog", excess)

    def mix(self, pieces: list[bytes]) -> bytes:
        """Sum the pieces of one frame (short ones padded with silence) through the soft
        limiter."""
        frame, limited = mix_one(pieces, self.frame_bytes)
        self.stats.limited_samples += limited
        return frame


def mix_one(pieces: list[bytes], frame_bytes: int) -> tuple[bytes, int]:
    """One frame: the pieces summed (short ones padded with silence) through the soft
    limiter; returns the frame and how many samples the limiter bent."""
    fb = frame_bytes
    if len(pieces) == 1 and len(pieces[0]) == fb:
        lone = np.frombuffer(pieces[0], dtype="<i2")
        if _MIN(lone) >= -KNEE and _MAX(lone) <= KNEE:  # no int32 copy, no abs
            return pieces[0], 0
    if len(pieces) == 2 and len(pieces[0]) == fb and len(pieces[1]) == fb:
        # two full frames (two people talking): one int32 sum, no zeroed buffer
        total = np.add(
            np.frombuffer(pieces[0], dtype="<i2"),
            np.frombuffer(pieces[1], dtype="<i2"),
            dtype=np.int32,
        )
    else:
        total = np.zeros(fb // SAMPLE_WIDTH, dtype=np.int32)
        for piece in pieces:
            samples = np.frombuffer(piece, dtype="<i2")
            total[: samples.size] += samples
    if _MIN(total) >= -KNEE and _MAX(total) <= KNEE:  # the usual case
        return total.astype("<i2").tobytes(), 0
    limited = int(np.count_nonzero(np.abs(total) > KNEE))
    return soft_limit(total).astype("<i2", copy=False).tobytes(), limited


def mix_many(frames: list[list[bytes]], frame_bytes: int) -> tuple[np.ndarray, list[int]]:
    """Many frames at once (the pieces :meth:`Mixer.pop_pieces` returned, of any number of
    calls with the same frame size): an ``(F, n)`` int16 array whose row ``i`` is
    ``mix_one(frames[i])``'s frame, and how many samples the limiter bent in each. Frames
    of one or two whole pieces (nearly all) are summed and checked for all calls in a few
    array operations instead of a few per frame."""
    n = frame_bytes // SAMPLE_WIDTH
    out = np.empty((len(frames), n), dtype="<i2")
    limited = [0] * len(frames)
    by_count: dict[int, list[int]] = {1: [], 2: []}
    for i, pieces in enumerate(frames):
        rows = by_count.get(len(pieces))
        if rows is not None and len(pieces[0]) == frame_bytes == len(pieces[-1]):
            rows.append(i)  # one or two whole pieces
        else:
            frame, limited[i] = mix_one(pieces, frame_bytes)
            out[i] = np.frombuffer(frame, dtype="<i2")
    for count, rows in by_count.items():
        if not rows:
            continue
        joined = b"".join([p for i in rows for p in frames[i]])
        stacked = np.frombuffer(joined, dtype="<i2").reshape(len(rows), count, n)
        if count == 1:
            total = stacked[:, 0]
        else:
            total = np.add(stacked[:, 0], stacked[:, 1], dtype=np.int32)
        if len(rows) == len(frames):  # every frame is of this kind, in order
            out = total.astype("<i2")  # wraps on loud rows, which are replaced below
        else:
            out[rows] = total
        if _MAX(total, axis=None) <= KNEE and _MIN(total, axis=None) >= -KNEE:
            continue  # the usual batch: nothing near full scale, no row to look at
        loud = np.flatnonzero((_MAX(total, axis=1) > KNEE) | (_MIN(total, axis=1) < -KNEE))
        for r in loud.tolist():
            i = rows[r]
            row = total[r].astype(np.int32)  # (|-32768| does not fit an int16)
            limited[i] = int(np.count_nonzero(np.abs(row) > KNEE))
            out[i] = soft_limit(row)
    return out, limited
