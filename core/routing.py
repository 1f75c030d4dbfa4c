"""Audio routing: the participants' voices to the agent, the agent's voice to the meeting.

Inbound (:class:`InboundRouter`, event loop)::

    transport thread --Bridge.audio()--> Handoff (one loop wake-up per batch of frames) -->
    on_handoff --> InboundPath (listen policy, queue; core/inbound.py) or PassthroughPath
    (a phone's μ-law as it is; core/passthrough.py) --> at the end of the tick, every call
    on the loop at once: mix, weigh, resample 16k->24k (core/inbound_batch.py) -->
    _deliver --> AgentSession.send_audio, and the taps (core/taps.py)

The mixer drains on a clock (a loop timer when queued audio falls due), a leaver's last words
go when they leave, and the agent's speech detector is kept fed with silence once nobody has
been heard for ``_SILENT_AFTER_S`` (:meth:`InboundRouter.keep_alive`, from the bridge's
watchdog), through the same path so it never precedes a speaker's tail.

Outbound (:class:`OutboundRouter`)::

    reply.audio 24k --> resample (or μ-law: transcoded, or passed through) -->
    OutboundPacer (own thread; core/audio/pacer.py) --> transport.write_audio (+ taps)
    barge-in --> flush() --> pacer.flush() (+ transport.flush_audio)

Neither decides anything about the call: the bridge (core/bridge.py) says who is listened to,
which agent session is current, whether the user is speaking, which reply's audio plays and
when to flush; the turn figures go to the reply's :class:`~botrun.core.metrics.Turn`
(core/reporting.py reports them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .inbound_batch import BatchSlot, batch_for
from .metrics import CallMetrics, Turn

if TYPE_CHECKING:
    from .audio.pacer import OutboundPacer
    from .audio.resampler import StreamResampler
    from .backends.base import AgentSession
    from .inbound import InboundPath
    from .participants import Roster
    from .passthrough import PassthroughPath
    from .taps import AudioTaps
    from .transport import Transport

log = logging.getLogger("botrun.bridge.routing")

Frame = tuple[str, bytes, int, float]  # participant, PCM16, rate, monotonic arrival
LoopCall = tuple[None, Callable[..., None], tuple[Any, ...]]  # a call to make on the loop
AGENT_RATE = 24000
_SILENT_AFTER_S = 0.3  # no participant audio for this long: feed the agent silence


class InboundRouter:
    """The participants' audio, from the hand-off to the agent session. Event loop only."""

    #: Read-only taps on the mix as the agent hears it (the bridge's, set at start()).
    taps: AudioTaps | None = None

    def __init__(
        self,
        roster: Roster,
        metrics: CallMetrics,
        client: Callable[[], AgentSession | None],
        user_speaking: Callable[[], bool],
        *,
        chunk_ms: int,
        in_rate: int,
        phone_audio: bool,
        passthrough: bool,
    ) -> None:
        self.roster = roster  # levels and turn energy per participant (attribution)
        self.metrics = metrics  # inbound processing latency
        self._client = client  # the current agent session, if any
        self._user_speaking = user_speaking  # the agent heard the user start (turn energy)
        self._chunk_ms = chunk_ms
        self._in_rate = in_rate  # the rate the backend takes PCM16 at
        self._phone_audio = phone_audio  # G.711 μ-law at 8 kHz from the transport
        self._passthrough = passthrough  # ... and to the agent as it is
        self._in_bps = 8000 if passthrough else 2 * in_rate  # bytes/s to the agent
        # what the agent hears, for the taps (core/taps.py): rate and encoding
        self._tap_in = (8000, "pcmu") if passthrough else (in_rate, "pcm16")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbound: InboundPath | PassthroughPath | None = None
        self._listened: set[str] = set()
        self._audio_clock = 0.0  # monotonic time the audio sent to the agent reaches
        self._last_heard = 0.0  # monotonic time a listened participant's audio last arrived
        self._drain_timer: asyncio.TimerHandle | None = None  # queued inbound audio falls due
        self._batch_slot: BatchSlot | None = None  # this call in the loop's inbound batch
        self._batched_frames = 0  # listened frames queued since the batch last delivered
        self._ignored_frames = 0

    def start(self, loop: asyncio.AbstractEventLoop, taps: AudioTaps | None) -> None:
        from .inbound import InboundPath
        from .passthrough import PassthroughPath

        self._loop = loop
        self.taps = taps
        if self._passthrough:
            self._inbound = PassthroughPath(chunk_ms=self._chunk_ms)
        else:
            self._inbound = InboundPath(chunk_ms=self._chunk_ms, rate=self._in_rate)

    def stop(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()

    @property
    def listened(self) -> set[str]:
        """Ids of the participants the agent hears (the listen policy's answer)."""
        return self._listened

    def set_listened(self, listened: set[str]) -> None:
        if listened != self._listened and self._inbound is not None:
            now = time.monotonic()
            self._inbound.set_members(listened, now)
            self._send_due(now)  # a leaver's last words go now, not with the next audio
        self._listened = listened

    def session_opened(self, now: float) -> None:
        """A new agent session: the audio sent to it starts at ``now``."""
        self._audio_clock = now

    def on_handoff(self, items: list[Frame | LoopCall]) -> None:
        """What the transport's threads handed over since the hand-off's last tick, in
        order: audio frames (participant, PCM16, rate, monotonic arrival time) and calls
        (participant events, ``ended``, the pacer's first-audio mark)."""
        frames: list[Frame] = []
        for item in items:
            if item[0] is not None:
                frames.append(item)
                continue
            if frames:
                self._on_audio(frames)
                frames = []
            _, fn, args = item
            try:
                fn(*args)
            except Exception:
                log.exception("bridge: handling %s failed", getattr(fn, "__name__", fn))
        if frames:
            self._on_audio(frames)

    def _on_audio(self, frames: list[Frame]) -> None:
        """Audio frames, in arrival order: the mixer lines voices up by when they arrived,
        not by when the loop picked them up. They are queued now; mixing, resampling and
        weighing them happen right after the hand-off's tick, for every call on the loop at
        once (core/inbound_batch.py), which calls :meth:`_hear` and :meth:`_deliver`."""
        inbound = self._inbound
        if inbound is None:
            return
        now = time.monotonic()  # the hand-off waits for its clock on purpose
        listened = self._listened
        transcode = self._phone_audio and not self._passthrough
        mine: list[tuple[str, bytes, int, float]] = []
        for pid, pcm, rate, arrived in frames:
            if pid not in listened:
                self._ignored_frames += 1  # the bot itself, unknown or not-listened people
                continue
            if transcode:  # μ-law from the phone, for an agent that takes 24 kHz PCM16 only
                from .audio.g711 import ulaw_to_pcm16

                pcm = ulaw_to_pcm16(pcm)
            mine.append((pid, pcm, rate, arrived if arrived < now else now))
        if not mine:
            return
        count = len(mine)
        weigh = inbound.push_frames(mine)
        self._last_heard = now
        self._batched_frames += count
        slot = self._batch_slot
        if slot is None:
            batch = batch_for(self._loop or asyncio.get_running_loop())
            slot = self._batch_slot = BatchSlot(batch, self._batch_path, self._hear, self._deliver)
        slot.batch.add(slot, now, weigh)

    def _batch_path(self) -> InboundPath | PassthroughPath | None:
        return self._inbound

    def _hear(self, levels: list[tuple[str, float]]) -> None:
        """The energies of the frames :meth:`_on_audio` queued (transcript attribution and
        who is speaking)."""
        self.roster.hear(levels, self._user_speaking())

    def _deliver(self, frames: list[bytes], now: float, picked: float) -> None:
        """The mixed frames due at ``now``, resampled for the agent: send them."""
        # processing latency: from the hand-off's pick-up to the frames ready for the
        # client (its writing them to the socket, done right here, is the client's part)
        took = time.perf_counter() - picked
        self._send_frames(frames, now)
        self._arm_drain_timer()
        self.metrics.inbound.add(took, self._batched_frames)
        self._batched_frames = 0

    def _send_due(self, now: float) -> None:
        """Send the mixed frames due at ``now``; if audio stays queued, come back when it
        falls due even if nothing else arrives (the mixer drains on a clock)."""
        inbound = self._inbound
        if inbound is None:
            return
        self._send_frames(inbound.pop(now), now)
        self._arm_drain_timer()

    def _arm_drain_timer(self) -> None:
        inbound = self._inbound
        if inbound is None:
            return
        due = inbound.next_due()
        timer = self._drain_timer
        if due is None or (timer is not None and timer.when() <= due):
            return
        if timer is not None:
            timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        self._drain_timer = loop.call_at(due, self._on_drain_timer, due)

    def _on_drain_timer(self, due: float) -> None:
        self._drain_timer = None
        # loop.time() is time.monotonic(); never ask the mixer before the moment it named
        self._send_due(max(time.monotonic(), due))

    def _send_frames(self, frames: list[bytes], now: float) -> None:
        if not frames:
            return
        client, taps = self._client(), self.taps
        for frame in frames:
            if client is not None:
                client.send_audio(frame)
            if taps is not None:
                taps.heard(frame, *self._tap_in)
            self._audio_clock = max(self._audio_clock, now - 0.2) + len(frame) / self._in_bps

    def quiet_in(self, now: float) -> float:
        """Seconds until :meth:`keep_alive` may have silence to send if no more audio
        comes (0: it may now)."""
        return max(0.0, self._last_heard + _SILENT_AFTER_S - now)

    def keep_alive(self, now: float, chunk_s: float) -> None:
        """Keep the agent's speech detector running: silence while nobody is heard. Only once
        no audio has arrived for a while: a stalled loop or a late SDK frame must not get
        silence inserted into the middle of someone's sentence. The silence leaves through
        the inbound path, after anything it still holds."""
        if (
            self._client() is not None
            and self._inbound is not None
            and now - self._last_heard > _SILENT_AFTER_S
            and now - self._audio_clock > 2 * chunk_s
        ):
            n = int((now - self._audio_clock) / chunk_s)
            self._send_frames(self._inbound.keepalive(min(n, 50)), now)


class OutboundRouter:
    """The agent's voice, from the session to the transport: resampled (or μ-law), paced."""

    def __init__(
        self,
        transport: Transport,
        metrics: CallMetrics,
        first_audio: Callable[[Turn, float], None],
        *,
        phone_audio: bool,
        passthrough: bool,
    ) -> None:
        self.transport = transport
        self.metrics = metrics  # outbound processing latency
        # a reply's first audio is being handed to the transport (pacer thread: hand off)
        self._first_audio = first_audio
        self._phone_audio = phone_audio  # G.711 μ-law at 8 kHz to the transport
        self._passthrough = passthrough  # ... as the agent sent it
        self.pacer: OutboundPacer | None = None
        self._out_rs: StreamResampler | None = None

    def start(self, taps: AudioTaps | None, prebuffer_ms: int) -> None:
        """Start the pacer (its thread, or the process's shared one)."""
        from .audio.pacer import OutboundPacer
        from .audio.resampler import StreamResampler
        from .taps import tee_sink

        t = self.transport
        if self._passthrough:
            self._out_rs = None
        else:
            self._out_rs = StreamResampler(AGENT_RATE, t.output_sample_rate)
        phone: dict[str, Any] = {"sample_width": 1, "silence": b"\xff"} if self._phone_audio else {}
        self.pacer = OutboundPacer(
            t.write_audio
            if taps is None
            else tee_sink(
                t.write_audio,
                taps,
                t.output_sample_rate,
                "pcmu" if self._phone_audio else "pcm16",
            ),
            t.output_sample_rate,
            chunk_ms=t.output_chunk_ms,
            max_ahead=t.output_max_ahead,
            flush_sink=t.flush_audio,
            name=f"{t.name}-pacer",
            prebuffer_ms=prebuffer_ms,
            speed=t.time_scale,
            shared=not t.write_blocks,
            **phone,
        )
        self.pacer.start()

    def play(self, pcm24: bytes, turn: Turn | None) -> None:
        """Queue reply audio (24 kHz PCM16, or μ-law passed through) for the meeting; ``turn``
        is the reply's (its first chunk is timed, its queued audio counted). Only audio the
        session accepted reaches here (AgentClient asks SessionState.accept_audio in arrival
        order): stale or late audio is already gone."""
        if self.pacer is None or (self._out_rs is None and not self._passthrough):
            return
        t0 = time.perf_counter()
        if self._out_rs is None:  # μ-law from the agent, straight to the phone
            out = pcm24
        else:
            out = self._out_rs.process(pcm24)
            if self._phone_audio:
                from .audio.g711 import pcm16_to_ulaw

                out = pcm16_to_ulaw(out)
        on_start = None
        if turn is not None and not turn.audio_queued:
            turn.audio_queued = True
            pacer = self.pacer

            def on_start(turn: Turn = turn) -> None:  # pacer thread, before the chunk's write
                t = time.monotonic()
                turn.sink_start_ms = pacer.stats.written_ms
                turn.sink_position_ms = getattr(self.transport, "sent_position_ms", None)
                self._first_audio(turn, t)

        if out:
            if turn is not None:
                turn.queued_ms += len(out) * 1000 / self.pacer.sample_width / self.pacer.sample_rate
            self.pacer.put(out, on_start)
        self.metrics.outbound.add(time.perf_counter() - t0)

    def flush(self) -> float | None:
        """Barge-in: drop what is queued for the meeting; the milliseconds of audio flushed
        (None before the pacer has started)."""
        if self.pacer is None:
            return None
        flushed = self.pacer.flush()
        if self._out_rs is not None:
            self._out_rs.reset()
        return flushed

    @property
    def pending_ms(self) -> float:
        """Bot audio queued that the transport has not had yet."""
        return self.pacer.pending_ms if self.pacer is not None else 0.0
