"""Observers the Agora SDK calls on its native threads.

Rules (see reference/agora-server-sdk.md, "Threading"): copy what is needed, hand it off,
return at once, never call the SDK, never raise into it. Concretely:

* participant joins/leaves and audio go straight to the bridge's
  :class:`~botrun.core.transport.TransportEvents`, whose methods are thread-safe by contract
  (they ``call_soon_threadsafe`` themselves); calling them directly keeps join -> audio ->
  leave in the order the SDK reported them;
* anything that touches the transport's own state (connected, failed, token renewal) is
  handed to the event loop with ``loop.call_soon_threadsafe``;
* every callback is wrapped by :func:`_guarded`: an exception is counted and logged, and the
  SDK gets the return value it expects.

The handler classes are plain mixins; :func:`observer_classes` combines them with the SDK's
interface classes (only available after :func:`botrun.transports.agora.sdk.load_sdk`), so the
SDK's default no-op methods cover every callback botrun does not care about.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import reasons

if TYPE_CHECKING:
    from botrun.core.transport import TransportEvents

    from .sdk import AgoraSDK

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class LoopTarget(Protocol):
    """The transport-side handlers the observers schedule on the event loop."""

    def on_connected(self, local_uid: str) -> None: ...
    def on_failure(self, reason: int) -> None: ...
    def on_disconnected(self, reason: int) -> None: ...
    def on_connection_lost(self) -> None: ...
    def on_token_will_expire(self) -> None: ...
    def on_sdk_error(self, code: int, message: str) -> None: ...
    def on_publish_failed(self, error: int) -> None: ...


@dataclass
class CallbackStats:
    """Counters the native threads update (single writer per counter in practice)."""

    frames: int = 0
    audio_bytes: int = 0
    frames_dropped: int = 0
    own_frames_ignored: int = 0
    callback_errors: int = 0


class Relay:
    """What all observers of one connection share: the loop, the events sink, the loop-side
    target, the bot's own uid and counters. ``active`` turns every delivery off at leave."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        events: TransportEvents,
        target: LoopTarget,
        local_uid: str | None = None,
    ) -> None:
        self.loop = loop
        self.events = events
        self.target = target
        self.local_uid = local_uid
        self.active = True
        self.stats = CallbackStats()
        self._error_lock = threading.Lock()

    def to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the event loop from any thread; never raises."""
        if not self.active:
            return
        # RuntimeError: the loop is closed, the call is over and there is nothing to tell.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(fn, *args)

    def is_self(self, uid: str) -> bool:
        return self.local_uid is not None and uid == self.local_uid

    def count_error(self, where: str, exc: BaseException) -> None:
        with self._error_lock:
            self.stats.callback_errors += 1
            n = self.stats.callback_errors
        if n <= 5 or n % 1000 == 0:
            log.error("agora callback %s failed (%d so far): %r", where, n, exc)


def _guarded(default: Any) -> Callable[[F], F]:
    """Never let an exception escape into the SDK; return ``default`` instead."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(self: Any, *args: Any) -> Any:
            try:
                return fn(self, *args)
            except Exception as exc:  # the SDK must never see it
                with contextlib.suppress(Exception):  # even counting must not raise
                    self._relay.count_error(fn.__name__, exc)
                return default

        return inner  # type: ignore[return-value]

    return wrap


class ConnectionHandler:
    """Connection events: join result, users, token expiry, errors."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    @_guarded(None)
    def on_connected(self, agora_rtc_conn: Any, conn_info: Any, reason: int) -> None:
        uid = str(conn_info.local_user_id)
        self._relay.local_uid = uid  # before any on_user_joined of this thread
        self._relay.to_loop(self._relay.target.on_connected, uid)

    @_guarded(None)
    def on_disconnected(self, agora_rtc_conn: Any, conn_info: Any, reason: int) -> None:
        self._relay.to_loop(self._relay.target.on_disconnected, int(reason))

    @_guarded(None)
    def on_reconnecting(self, agora_rtc_conn: Any, conn_info: Any, reason: int) -> None:
        log.warning("agora: connection interrupted, reconnecting (reason %s)", reason)

    @_guarded(None)
    def on_reconnected(self, agora_rtc_conn: Any, conn_info: Any, reason: int) -> None:
        log.info("agora: reconnected")

    @_guarded(None)
    def on_connection_lost(self, agora_rtc_conn: Any, conn_info: Any) -> None:
        self._relay.to_loop(self._relay.target.on_connection_lost)

    @_guarded(None)
    def on_connection_failure(self, agora_rtc_conn: Any, info: Any, reason: int) -> None:
        self._relay.to_loop(self._relay.target.on_failure, int(reason))

    @_guarded(None)
    def on_user_joined(self, agora_rtc_conn: Any, user_id: str) -> None:
        uid = str(user_id)
        if self._relay.active and not self._relay.is_self(uid):
            self._relay.events.participant_joined(uid, None)

    @_guarded(None)
    def on_user_left(self, agora_rtc_conn: Any, user_id: str, reason: int) -> None:
        uid = str(user_id)
        if self._relay.active and not self._relay.is_self(uid):
            self._relay.events.participant_left(uid, reasons.user_left_reason(int(reason)))

    @_guarded(None)
    def on_token_privilege_will_expire(self, agora_rtc_conn: Any, token: str) -> None:
        # The token itself is a secret: it is neither logged nor passed on.
        self._relay.to_loop(self._relay.target.on_token_will_expire)

    @_guarded(None)
    def on_token_privilege_did_expire(self, agora_rtc_conn: Any) -> None:
        self._relay.to_loop(self._relay.target.on_failure, reasons.TOKEN_EXPIRED)

    @_guarded(None)
    def on_error(self, agora_rtc_conn: Any, error_code: int, error_msg: str) -> None:
        self._relay.to_loop(self._relay.target.on_sdk_error, int(error_code), str(error_msg))

    @_guarded(-1)
    def on_aiqos_capability_missing(
        self, agora_rtc_conn: Any, recommend_audio_scenario: int
    ) -> int:
        # -1: keep the AI-server scenario; the SDK's default returns None, which breaks an
        # internal comparison in the SDK.
        log.info("agora: a client in the channel lacks AI QoS support; keeping the scenario")
        return -1


class AudioFrameHandler:
    """Per-user PCM before mixing (16 kHz mono, 10 ms per call) -> the bridge."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    @_guarded(1)
    def on_playback_audio_frame_before_mixing(
        self,
        agora_local_user: Any,
        channelId: str,  # the SDK's parameter name
        uid: str,
        frame: Any,
        vad_result_state: int,
        vad_result_bytearray: Any,
    ) -> int:
        relay = self._relay
        if not relay.active:
            return 1
        user = str(uid)
        if relay.is_self(user):
            relay.stats.own_frames_ignored += 1
            return 1
        if frame.channels != 1 or frame.bytes_per_sample != 2:
            relay.stats.frames_dropped += 1
            if relay.stats.frames_dropped == 1:
                log.warning(
                    "agora: dropping audio that is not 16-bit mono (%s ch, %s bytes/sample)",
                    frame.channels,
                    frame.bytes_per_sample,
                )
            return 1
        pcm = bytes(frame.buffer)  # our own immutable copy
        relay.stats.frames += 1
        relay.stats.audio_bytes += len(pcm)
        relay.events.audio(user, pcm, int(frame.samples_per_sec))
        return 1


class LocalUserHandler:
    """The bot's own track: publication failures matter, the rest is debug detail."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    @_guarded(None)
    def on_audio_track_publication_failure(
        self, agora_local_user: Any, agora_local_audio_track: Any, error: int
    ) -> None:
        self._relay.to_loop(self._relay.target.on_publish_failed, int(error))

    @_guarded(None)
    def on_audio_publish_state_changed(
        self,
        agora_local_user: Any,
        channel: str,
        old_state: int,
        new_state: int,
        elapse_since_last_state: int,
    ) -> None:
        log.debug("agora: publish state %s -> %s", old_state, new_state)

    @_guarded(None)
    def on_user_audio_track_subscribed(
        self, agora_local_user: Any, user_id: str, agora_remote_audio_track: Any
    ) -> None:
        log.debug("agora: subscribed to audio of uid %s", user_id)


@dataclass(frozen=True)
class ObserverClasses:
    connection: type
    audio_frame: type
    local_user: type


@functools.lru_cache(maxsize=8)
def _classes(conn_iface: type, frame_iface: type, user_iface: type) -> ObserverClasses:
    return ObserverClasses(
        connection=type("BotrunConnectionObserver", (ConnectionHandler, conn_iface), {}),
        audio_frame=type("BotrunAudioFrameObserver", (AudioFrameHandler, frame_iface), {}),
        local_user=type("BotrunLocalUserObserver", (LocalUserHandler, user_iface), {}),
    )


def observer_classes(sdk: AgoraSDK) -> ObserverClasses:
    """Our handlers subclassed from the SDK's interfaces (handler methods win in the MRO)."""
    return _classes(sdk.IRTCConnectionObserver, sdk.IAudioFrameObserver, sdk.IRTCLocalUserObserver)
