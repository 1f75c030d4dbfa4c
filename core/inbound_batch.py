"""The inbound audio of every call on an event loop, mixed and resampled together.

Each call's inbound path (``core/inbound.py``) queues its participants' audio as it arrives
and decides, frame by frame, what is due; the numbers are the same in every call: mix one
or two 20 ms frames, weigh each participant's frame (its energy, for who is speaking),
resample the mix from 16 to 24 kHz. Done call by call that is a dozen NumPy calls per call
per frame, each costing more in overhead than in arithmetic at these sizes. So a call's
audio is only *queued* when the hand-off (``core/handoff.py``) delivers it; the calls that
got audio in that tick are collected here and, at the end of the tick, all their due frames
are mixed in a few array operations (:func:`~botrun.core.audio.mixer.mix_many`), every
participant frame's energy is one reduction (:func:`~botrun.core.audio.pcm.energies`) and
every call's mix goes through one matrix product
(:func:`~botrun.core.audio.resampler.process_rows`). Nothing changes in what a call sends
or when, only how many NumPy calls it takes: the frames are the same (within float
rounding, under 1 LSB) and leave in the same loop pass as before. (Audio queued outside a
tick, as tests do, is flushed by a ``call_soon``.)

A call whose next frames cannot join the batch (a leaver's tail still inside its filter,
audio that does not fill whole 1 ms steps, other rates) takes its own path
(:meth:`InboundPath.pop`), as does everything outside the tick (the drain timer, keep-alive
silence, a leave).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .audio.mixer import mix_many
from .audio.pcm import energies
from .audio.resampler import StreamResampler, process_rows
from .handoff import after_each_tick
from .inbound import Heard, InboundPath

if TYPE_CHECKING:
    from .passthrough import PassthroughPath

log = logging.getLogger(__name__)

# Calls per batch: a frame waits for its whole batch to be processed, so a tick's calls are
# flushed in batches of this many (a frame's processing latency stays a fraction of a
# millisecond at 50 calls), each still one product instead of one per call.
MAX_CALLS = 8


class BatchSlot:
    """One call's place in its loop's :class:`InboundBatch` (made once per call).

    ``path`` returns the call's inbound path (None once it has none); ``hear`` gets the
    energies of the participant frames it queued since the last flush, as
    ``[(participant id, energy), ...]``; ``deliver`` gets the call's due frames, resampled
    for the agent, and the ``now`` they were due at. ``batch`` is the loop's batch."""

    __slots__ = ("_now", "batch", "deliver", "hear", "heard", "path", "picked", "queued")

    def __init__(
        self,
        batch: InboundBatch,
        path: Callable[[], InboundPath | PassthroughPath | None],
        hear: Callable[[list[tuple[str, float]]], None],
        deliver: Callable[[list[bytes], float, float], None],
    ) -> None:
        self.batch = batch
        self.path = path
        self.hear = hear
        self.deliver = deliver
        self.heard: list[Heard] = []
        self.queued = False
        self._now = 0.0
        self.picked = 0.0  # perf_counter() when the first of these frames was picked up


class InboundBatch:
    """The calls on one loop that got audio since the last flush; flushed once per tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the loop keys the registry: never keep it alive
        after_each_tick(loop, self._after_tick)
        self._slots: list[BatchSlot] = []
        self.flushes = 0
        self.batched_frames = 0  # frames mixed and resampled together with other calls'
        self.single_frames = 0  # frames that took their call's own path

    def add(self, slot: BatchSlot, now: float, heard: list[Heard]) -> None:
        """Queue ``slot``'s call for the next flush (audio it queued at ``now``, with the
        participant frames in ``heard`` to weigh); the first call in a tick schedules it."""
        # (a new list: ``heard`` may be what the mixer was offered, never changed)
        slot.heard = slot.heard + heard if slot.heard else heard
        slot._now = now
        if slot.queued:
            return
        slot.queued = True
        slot.picked = time.perf_counter()
        if not self._slots:  # flushed at the end of the hand-off's tick, or else soon
            loop = self._loop()
            if loop is None:
                return
            loop.call_soon(self._after_tick)
        self._slots.append(slot)
        if len(self._slots) >= MAX_CALLS:
            self.flush()

    def _after_tick(self) -> None:
        if self._slots:
            self.flush()

    def flush(self) -> None:
        slots, self._slots = self._slots, []
        self.flushes += 1
        for slot in slots:
            slot.queued = False
        try:
            self._weigh(slots)
        except Exception:  # never lose the audio over the speaker levels
            log.exception("inbound batch: weighing the frames failed")
        try:
            self._mix_and_send(slots)
        except Exception:
            log.exception("inbound batch failed; calls send their audio one by one")
            for slot in slots:
                path = slot.path()
                if path is not None:
                    slot.deliver(path.pop(slot._now), slot._now, slot.picked)

    @staticmethod
    def _weigh(slots: list[BatchSlot]) -> None:
        frames = [heard[1] for slot in slots for heard in slot.heard]
        if not frames:
            return
        values = iter(energies(frames))
        for slot in slots:
            heard, slot.heard = slot.heard, []
            if heard:
                slot.hear([(h[0], next(values)) for h in heard])

    def _mix_and_send(self, slots: list[BatchSlot]) -> None:
        # 1. what each call has due, unmixed; calls that must go alone go now
        due: list[tuple[BatchSlot, InboundPath, list[list[bytes]]]] = []
        for slot in slots:
            path = slot.path()
            if path is None:
                continue
            pieces = path.take(slot._now)
            if pieces is None or not isinstance(path, InboundPath):  # it goes alone this time
                frames = path.pop(slot._now)
                self.single_frames += len(frames)
                slot.deliver(frames, slot._now, slot.picked)
            elif pieces:
                due.append((slot, path, pieces))
            else:
                slot.deliver([], slot._now, slot.picked)
        by_size: dict[int, list[tuple[BatchSlot, InboundPath, list[list[bytes]]]]] = {}
        for call in due:
            by_size.setdefault(call[1].frame_bytes, []).append(call)
        for size, calls in by_size.items():
            self._send_size(calls, size)

    def _send_size(
        self, calls: list[tuple[BatchSlot, InboundPath, list[list[bytes]]]], size: int
    ) -> None:
        """Calls whose frames have one size: every frame mixed at once, then one matrix
        product for the calls with the same number of frames and filter. Call ``i``'s rows
        are consecutive; each call's bytes are slices of one ``tobytes``."""
        # 2. mix every due frame of these calls at once
        frames = [frame for _, _, pieces in calls for frame in pieces]
        mixed, limited = mix_many(frames, size)
        if len(frames) == len(calls) and self._send_one_each(calls, mixed, limited, size):
            return
        n = mixed.shape[1]
        mixed_bytes = mixed.tobytes()
        starts: list[int] = []
        row = 0
        for _, _, pieces in calls:
            starts.append(row)
            row += len(pieces)
        # 3. resample: one product per (frames per call, filter); a call whose filter
        # cannot take it (input pending, another rate pair, none) goes through its own
        out: list[list[bytes]] = [[] for _ in calls]
        groups: dict[tuple[int, int, int], list[int]] = {}
        resamplers: list[StreamResampler | None] = []
        for i, (_, path, pieces) in enumerate(calls):
            count = len(pieces)
            rs = path.batch_resampler(count * n)
            resamplers.append(rs)
            if rs is None:
                out[i] = path.resample_rows(mixed[starts[i] : starts[i] + count])
            else:
                groups.setdefault((count, rs.in_rate, rs.out_rate), []).append(i)
        for (count, _, _), members in groups.items():
            if count == 1 and len(members) == len(calls):
                x = mixed  # the usual tick: one frame a call, every call batched
            else:
                rows = np.array([starts[i] for i in members])
                if count > 1:
                    rows = (rows[:, None] + np.arange(count)).ravel()
                x = mixed[rows].reshape(len(members), count * n)
            y = process_rows([resamplers[i] for i in members], x)  # type: ignore[misc]
            y_bytes = y.tobytes()
            per_call = y.shape[1] * 2
            frame = per_call // count
            for k, i in enumerate(members):
                base = k * per_call
                out[i] = [y_bytes[base + j * frame : base + (j + 1) * frame] for j in range(count)]
            self.batched_frames += len(members) * count
        # 4. each call sends its frames, in the order the calls got their audio
        for i, (slot, path, pieces) in enumerate(calls):
            last = starts[i] + len(pieces)
            bent = sum(limited[starts[i] : last])
            if bent:
                path.count_limited(bent)
            if resamplers[i] is not None:
                path.sent_mix(mixed_bytes[(last - 1) * size : last * size])
            slot.deliver(out[i], slot._now, slot.picked)

    def _send_one_each(
        self,
        calls: list[tuple[BatchSlot, InboundPath, list[list[bytes]]]],
        mixed: np.ndarray,
        limited: list[int],
        size: int,
    ) -> bool:
        """The usual flush, in as few steps as it takes: one frame a call, every call's
        filter ready for it and the same rate pair. False (nothing done) otherwise."""
        n = mixed.shape[1]
        resamplers = [path.batch_resampler(n) for _, path, _ in calls]
        first = resamplers[0]
        if first is None:
            return False
        rates = first.in_rate, first.out_rate
        for rs in resamplers:
            if rs is None or (rs.in_rate, rs.out_rate) != rates:
                return False
        y = process_rows(resamplers, mixed)  # type: ignore[arg-type]
        y_bytes, out = y.tobytes(), y.shape[1] * 2
        mixed_bytes = mixed.tobytes()
        self.batched_frames += len(calls)
        for i, (slot, path, _) in enumerate(calls):
            if limited[i]:
                path.count_limited(limited[i])
            path.sent_mix(mixed_bytes[i * size : (i + 1) * size])
            slot.deliver([y_bytes[i * out : (i + 1) * out]], slot._now, slot.picked)
        return True


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InboundBatch] = (
    weakref.WeakKeyDictionary()
)


def batch_for(loop: asyncio.AbstractEventLoop) -> InboundBatch:
    """The loop's one :class:`InboundBatch` (made on first use; used on the loop only)."""
    batch = _batches.get(loop)
    if batch is None:
        batch = _batches[loop] = InboundBatch(loop)
    return batch
