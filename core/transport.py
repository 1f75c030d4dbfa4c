"""The transport contract: what Daily, Agora, WAV and third-party transports implement.

A transport is small. It joins the meeting, reports participants, delivers each remote
participant's PCM16 audio, offers a sink for the bot's voice, and leaves. It never
resamples, never speaks the agent protocol and never owns timing: the bridge does.

Threading rules
---------------
* :class:`TransportEvents` methods may be called from **any thread** (SDK callback threads
  included). They copy what they need, hand off to the event loop with
  ``loop.call_soon_threadsafe`` and return at once. A transport never blocks an SDK callback
  and never calls the SDK from one.
* :meth:`Transport.write_audio` and :meth:`Transport.flush_audio` are called on the pacer's
  own thread. ``write_audio`` may block in real time (Daily's blocking ``write_frames``) or
  return at once (Agora's push); the pacer keeps its own clock either way.
* :meth:`Transport.join` and :meth:`Transport.leave` are coroutines run on the event loop.

See docs/transports.md for a walk-through of writing one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

from .errors import ActionUnsupported


@runtime_checkable
class TransportEvents(Protocol):
    """Implemented by the bridge; called by the transport from any thread."""

    def participant_joined(self, participant_id: str, name: str | None = None) -> None:
        """A remote participant (human, phone caller, other bot) is in the meeting."""

    def participant_updated(self, participant_id: str, name: str | None = None) -> None:
        """A participant's display name (or other info) changed."""

    def participant_left(self, participant_id: str, reason: str = "") -> None:
        """A participant left (hung up, was removed, ...)."""

    def audio(self, participant_id: str, pcm: bytes, sample_rate: int) -> None:
        """PCM16 little-endian **mono** audio from one participant at ``sample_rate`` Hz.
        Any length; an odd trailing byte is carried by the bridge's resampler."""

    def ended(self, reason: str, error: str | None = None) -> None:
        """The meeting is over for the bot (left, kicked, room expired, inputs finished).
        With ``error`` the command exits non-zero and prints it."""

    def participant_phone(self, participant_id: str, number: str | None = None) -> None:
        """The participant is a phone caller (dial-in/dial-out/SIP leg); ``number`` is the
        caller's number when known (E.164 or SIP URI). Call before or after joined."""

    def dtmf(self, participant_id: str | None, digit: str) -> None:
        """A keypad digit (``0-9*#ABCD``) pressed by a participant (``None``: unknown)."""

    def status(self, state: str, detail: str = "") -> None:
        """A transport-level state the user should see, e.g. ``"reconnecting"`` /
        ``"reconnected"`` (network) or a phone call's status (``"ringing"``, ...)."""


class Transport(ABC):
    """Base class of a meeting transport. Subclasses set :attr:`output_sample_rate`."""

    #: Name used in logs (``"daily"``, ``"agora"``, ``"wav"``).
    name: str = "transport"
    #: Sample rate the audio sink expects (the meeting rate of the bot's voice).
    output_sample_rate: int = 16000
    #: Chunk the pacer writes, in ms (a multiple of 10).
    output_chunk_ms: int = 10
    #: How many chunks the pacer keeps inside the sink at most. For a sink without
    #: :meth:`flush_audio` this bounds the stale audio heard after a barge-in: at most
    #: ``output_max_ahead * output_chunk_ms`` (the default 2 x 10 ms: 20 ms).
    output_max_ahead: int = 2
    #: Whether :meth:`write_audio` blocks in real time (Daily's ``write_frames``). A sink
    #: that returns at once (a push into the SDK's own buffer) may say False: its calls
    #: then share one pacer thread per process instead of one thread each.
    write_blocks: bool = True
    #: How many times faster than real time the meeting runs. Only simulated transports
    #: (the WAV transport's ``--speed``) change it; the pacer's clock follows it.
    time_scale: float = 1.0
    #: What :meth:`TransportEvents.audio` delivers and :meth:`write_audio` takes: ``"pcm"``
    #: (PCM16) or ``"pcmu"`` (G.711 μ-law at 8 kHz, one byte a sample: a phone transport
    #: such as Twilio's; :attr:`output_sample_rate` is then 8000).
    audio_encoding: str = "pcm"
    #: For a ``"pcmu"`` transport: ``"pcmu"`` passes the μ-law through to an agent session
    #: that takes ``audio/pcmu`` (no resampling, no mixing); ``""`` makes the bridge
    #: transcode (μ-law <-> PCM16, 8 kHz <-> 24 kHz) for a backend limited to 24 kHz PCM.
    agent_audio: str = ""
    #: True for a transport whose call begins with its first participant, not with
    #: :meth:`join` (the browser page, which waits for someone to open it): the call's
    #: length and ``[bridge] max_duration_s`` then count from that first join, not the wait.
    call_starts_at_join: bool = False

    @property
    def bot_participant_id(self) -> str | None:
        """The bot's own participant id once joined (its audio never reaches the agent)."""
        return None

    def participants_pending(self) -> bool:
        """True while the transport knows more participants are still to come (a scripted
        meeting such as the WAV transport's); the bridge's idle timer waits for them."""
        return False

    @abstractmethod
    async def join(self, events: TransportEvents) -> None:
        """Join the meeting and start delivering events. Raise
        :class:`botrun.core.errors.TransportError` with a clear message on failure."""

    @abstractmethod
    async def leave(self) -> None:
        """Leave and release every native resource. Idempotent; safe after a failed join."""

    @abstractmethod
    def write_audio(self, pcm: bytes) -> None:
        """Play PCM16 mono at :attr:`output_sample_rate`; called on the pacer thread with
        whole chunks of :attr:`output_chunk_ms`."""

    def flush_audio(self) -> None:
        """Drop audio queued inside the SDK, where the SDK can (barge-in). Pacer thread.
        The default does nothing: SDKs without a flush rely on the pacer's short queue."""
        return

    # ------------------------------------------------------------------ call actions
    # Coroutines run on the event loop, called by the bridge for CallContext actions (the
    # bot's tools and hooks). A transport overrides what it can do; the defaults raise
    # ActionUnsupported naming the transport, which a tool hands back to the agent.
    # The bridge validates arguments (DTMF digits, declared transfer targets) first.

    async def hang_up(self, reason: str) -> None:
        """End the call for everyone the bot brought in, beyond leaving: e.g. end a SIP or
        PSTN leg (Daily dial-in/dial-out, Twilio). The bridge then stops and calls
        :meth:`leave`. The default does nothing: leaving is hanging up."""
        return

    async def transfer(self, target: str, participant_id: str | None = None) -> None:
        """Hand the phone participant (``None``: the call's phone caller) to ``target``,
        a SIP URI or an E.164 number, and return once the transfer was accepted."""
        raise ActionUnsupported(self.name, "transfer calls")

    async def send_dtmf(self, digits: str, participant_id: str | None = None) -> None:
        """Send keypad tones ``digits`` (already validated: ``0-9*#ABCD``) into the call,
        e.g. to navigate a phone menu on a dial-out."""
        raise ActionUnsupported(self.name, "send DTMF tones")

    async def dial_out(self, number: str) -> str:
        """Call ``number`` (E.164 or SIP URI) into the meeting; returns the new leg's
        participant id (or another id that :meth:`hang_up` understands)."""
        raise ActionUnsupported(self.name, "dial out")
