"""The ``daily.EventHandler`` subclass: the only code that runs on Daily's native threads.

Every callback copies what it needs (its arguments belong to the SDK thread), hands it
over, and returns. Two ways, as for Agora (transports/agora/observers.py):

* **participant events** (joined, updated, left) are reported to the bridge on this thread:
  the transport decides (under its lock) whether the event is news and calls the bridge's
  :class:`~botrun.core.transport.TransportEvents`, which is thread-safe and takes them
  through the same hand-off as the participants' audio (which Daily's audio thread delivers
  straight to it). So a participant's leave stays in order with their audio frames, and it
  costs one loop pass. What the transport itself must do about the event on the loop (an
  audio renderer to set, a phone leg, the caller hanging up) is handed over after it with
  ``loop.call_soon_threadsafe``;
* **everything else** (call state, errors, dial-in/dial-out, keypad, network) is handed to
  the transport on the event loop with ``loop.call_soon_threadsafe``.

A callback never calls the SDK and never raises (an exception here would be printed by the
SDK and the event lost); a callback that cannot be handed over (the loop closed after the
call, a payload that cannot be copied) is counted, dropped and logged -- the first few and
then every 100th, so a flood cannot drown the log.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any, Protocol

import daily

log = logging.getLogger("botrun.daily")
_LOG_FIRST = 5  # log the first N failures of a kind, then every 100th


def _worth_logging(n: int) -> bool:
    return n <= _LOG_FIRST or n % 100 == 0


#: What the transport does on the loop after a participant event (None: nothing).
FollowUp = Callable[[], None] | None


class CallEvents(Protocol):
    """The receiver of the handler's events (implemented by the transport). The ``report_*``
    methods run on the SDK's thread (thread-safe, they report to the bridge at once) and
    return what must follow on the loop; the ``on_*`` methods run on the loop."""

    def report_joined(self, participant: dict[str, Any]) -> FollowUp: ...
    def report_updated(self, participant: dict[str, Any]) -> FollowUp: ...
    def report_left(self, participant: dict[str, Any], reason: str) -> FollowUp: ...
    def on_call_state(self, state: str) -> None: ...
    def on_error(self, message: str) -> None: ...
    def on_dialin_ready(self, sip_endpoint: str) -> None: ...
    def on_dialin_event(self, kind: str, data: dict[str, Any]) -> None: ...
    def on_dialout_event(self, kind: str, data: dict[str, Any]) -> None: ...
    def on_dtmf(self, data: dict[str, Any]) -> None: ...
    def on_network_status(self, status: dict[str, Any]) -> None: ...


class DailyHandler(daily.EventHandler):
    """Forwards Daily's callbacks to a :class:`CallEvents` on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: CallEvents) -> None:
        super().__init__()
        self._loop = loop
        self._target = target
        self.dropped = 0  # events that could not be handed to the loop (closed, bad payload)

    def _post(self, method: str, *args: Any) -> None:
        try:
            args = copy.deepcopy(args)
            self._loop.call_soon_threadsafe(self._call, method, args)
        except Exception as exc:  # loop closed or odd data: never raise into the SDK
            self._dropped(method, exc)

    def _report(self, method: str, *args: Any) -> None:
        """A participant event: reported to the bridge now, on this thread (the transport's
        ``report_*`` reads the payload here and keeps only strings); its loop-side
        follow-up, if any, is handed to the loop."""
        try:
            follow_up = getattr(self._target, method)(*args)
            if follow_up is not None:
                self._loop.call_soon_threadsafe(self._follow, method, follow_up)
        except Exception as exc:  # loop closed or odd data: never raise into the SDK
            self._dropped(method, exc)

    def _dropped(self, method: str, exc: Exception) -> None:
        self.dropped += 1
        if _worth_logging(self.dropped):
            closed = self._loop.is_closed()
            log.log(
                logging.DEBUG if closed else logging.WARNING,
                "dropped Daily event %s (#%d): %s",
                method,
                self.dropped,
                "after the call ended" if closed else f"{type(exc).__name__}: {exc}",
            )

    def _call(self, method: str, args: tuple[Any, ...]) -> None:
        try:
            getattr(self._target, method)(*args)
        except Exception:  # one bad event must not stop the others
            log.exception("error handling Daily event %s", method)

    def _follow(self, method: str, follow_up: Callable[[], None]) -> None:
        try:
            follow_up()
        except Exception:  # one bad event must not stop the others
            log.exception("error handling Daily event %s", method)

    # Participants --------------------------------------------------------------------
    def on_participant_joined(self, participant: Any) -> None:
        self._report("report_joined", _as_dict(participant))

    def on_participant_updated(self, participant: Any) -> None:
        self._report("report_updated", _as_dict(participant))

    def on_participant_left(self, participant: Any, reason: Any = "") -> None:
        self._report("report_left", _as_dict(participant), str(reason or ""))

    # Call state ----------------------------------------------------------------------
    def on_call_state_updated(self, state: Any) -> None:
        self._post("on_call_state", str(state))

    def on_error(self, message: Any) -> None:
        self._post("on_error", str(message))

    # Dial-in -------------------------------------------------------------------------
    def on_dialin_ready(self, sip_endpoint: Any) -> None:
        self._post("on_dialin_ready", str(sip_endpoint))

    def on_dialin_connected(self, data: Any) -> None:
        self._post("on_dialin_event", "connected", _as_dict(data))

    def on_dialin_stopped(self, data: Any) -> None:
        self._post("on_dialin_event", "stopped", _as_dict(data))

    def on_dialin_error(self, data: Any) -> None:
        self._post("on_dialin_event", "error", _as_dict(data))

    def on_dialin_warning(self, data: Any) -> None:
        self._post("on_dialin_event", "warning", _as_dict(data))

    # Dial-out ------------------------------------------------------------------------
    def on_dialout_connected(self, data: Any) -> None:
        self._post("on_dialout_event", "connected", _as_dict(data))

    def on_dialout_answered(self, data: Any) -> None:
        self._post("on_dialout_event", "answered", _as_dict(data))

    def on_dialout_stopped(self, data: Any) -> None:
        self._post("on_dialout_event", "stopped", _as_dict(data))

    def on_dialout_error(self, data: Any) -> None:
        self._post("on_dialout_event", "error", _as_dict(data))

    def on_dialout_warning(self, data: Any) -> None:
        self._post("on_dialout_event", "warning", _as_dict(data))

    # Keypad and network ---------------------------------------------------------------
    def on_dtmf_event(self, data: Any) -> None:
        self._post("on_dtmf", _as_dict(data))

    def on_network_connection_status_updated(self, status: Any) -> None:
        self._post("on_network_status", _as_dict(status))


def _as_dict(value: Any) -> dict[str, Any]:
    """SDK payloads are dicts; anything else is wrapped so the loop side sees one shape."""
    return value if isinstance(value, dict) else {"value": value}


class AudioRenderer:
    """The ``set_audio_renderer`` callback (native audio thread, holding the GIL): copy the
    PCM out of the SDK's ``AudioData`` and pass it to the bridge, whose
    :meth:`~botrun.core.transport.TransportEvents.audio` is thread-safe by contract."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink  # a TransportEvents
        self.frames = 0
        self.bad = 0  # malformed AudioData (counted; the first few logged, then every 100th)

    def __call__(self, participant_id: Any, audio: Any, audio_source: Any = "microphone") -> None:
        try:
            pcm = bytes(audio.audio_frames)
            rate = int(audio.sample_rate)
            channels = int(getattr(audio, "num_channels", 1) or 1)
            if channels > 1:
                pcm = _downmix(pcm, channels)
            self.frames += 1
            self._sink.audio(str(participant_id), pcm, rate)
        except Exception as exc:  # never raise into the SDK's audio thread
            self.bad += 1
            if _worth_logging(self.bad):
                log.warning(
                    "unusable audio from participant %s (#%d): %s", participant_id, self.bad, exc
                )


def _downmix(pcm: bytes, channels: int) -> bytes:
    """Average interleaved PCM16 channels to mono (rare: renderers normally deliver mono)."""
    import numpy as np

    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % (2 * channels)], dtype="<i2")
    mono = samples.reshape(-1, channels).astype(np.int32).mean(axis=1)
    return mono.astype("<i2").tobytes()
