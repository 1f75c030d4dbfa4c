"""The Agora transport: one RTC connection per call, AI-server audio scenario.

Lifecycle (the order Agora documents, each native step exactly once):

    join:  AgoraService.initialize -> create_rtc_connection -> register_observer ->
           set_playback_audio_frame_before_mixing_parameters(1, 16000) ->
           register_audio_frame_observer -> register_local_user_observer ->
           connect -> (on_connected) -> publish_audio
    leave: stop pushing -> disconnect -> connection.release -> service.release

Audio out: :meth:`write_audio` runs on the pacer thread and pushes each chunk with
``push_audio_pcm_data`` (which needs a writable ``bytearray``); barge-in calls
``interrupt_audio``. The pacer owns timing, so at most ~2 chunks sit inside the SDK.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botrun.core.errors import TransportError, UsageError
from botrun.core.secrets import register_secret
from botrun.core.transport import Transport, TransportEvents

from . import reasons
from . import stdout as sdk_stdout
from .observers import Relay, observer_classes
from .sdk import AgoraSDK, initialize_service, load_sdk
from .token import ROLE_PUBLISHER, build_rtc_token, is_hex32

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
CHANNELS = 1
_BYTES_PER_MS = SAMPLE_RATE // 1000 * 2 * CHANNELS
_MAX_UID = 2**32 - 1
# Agora: at most 64 bytes of letters, digits, space and these punctuation characters.
_CHANNEL_RE = re.compile(r"^[A-Za-z0-9 !#$%&()+\-:;<=.>?@\[\]^_{}|~,]{1,64}$")


@dataclass
class PushStats:
    """Outbound counters (pacer thread)."""

    chunks: int = 0
    push_errors: int = 0
    dropped_not_joined: int = 0
    padded: int = 0
    interrupts: int = 0
    renewals: int = 0


def validate_channel(channel: str) -> str:
    if not _CHANNEL_RE.match(channel):
        raise UsageError(
            f"invalid Agora channel name {channel!r}: use 1-64 letters, digits, spaces or "
            "!#$%&()+-:;<=.>?@[]^_{}|~,"
        )
    return channel


class AgoraTransport(Transport):
    """Joins one Agora channel as a broadcaster and bridges its audio."""

    name = "agora"
    output_sample_rate = SAMPLE_RATE
    output_chunk_ms = 20
    output_max_ahead = 2
    # push_audio_pcm_data copies into the SDK's own buffer and returns at once: every
    # call's pacer can run on the process's one shared pacer thread (core/audio/pacer.py)
    write_blocks = False

    def __init__(
        self,
        *,
        app_id: str,
        channel: str,
        uid: int = 0,
        certificate: str | None = None,
        token_expiry_s: int = 3600,
        join_timeout_s: float = 15.0,
        log_dir: Path | None = None,
        sdk_loader: Callable[[], AgoraSDK] = load_sdk,
    ) -> None:
        if not app_id or not is_hex32(app_id):
            raise UsageError(
                "AGORA_APP_ID must be the 32-character hexadecimal App ID of your Agora project"
            )
        if certificate is not None and not is_hex32(certificate):
            raise UsageError(
                "AGORA_APP_CERTIFICATE must be the 32-character hexadecimal App Certificate "
                "(Agora console, project settings), or unset when the project has none"
            )
        if not 0 <= uid <= _MAX_UID:
            raise UsageError(f"--uid must be between 0 and {_MAX_UID}")
        register_secret(app_id)
        register_secret(certificate)
        self.app_id = app_id
        self.channel = validate_channel(channel)
        self.uid = uid
        self.certificate = certificate or None
        self.token_expiry_s = token_expiry_s
        self.join_timeout_s = join_timeout_s
        self.log_dir = log_dir or Path(tempfile.gettempdir()) / "botrun-agora"
        self._sdk_loader = sdk_loader
        self.push_stats = PushStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: TransportEvents | None = None
        self._relay: Relay | None = None
        self._service: Any = None
        self._conn: Any = None
        self._observers: tuple[Any, ...] = ()  # kept alive while the SDK holds them
        self._connected: asyncio.Future[str] | None = None
        self._joined = False
        self._ended = False
        self._released = False
        self._send_lock = threading.Lock()
        self._publishing = False
        self._stdout: sdk_stdout.SDKStdout | None = None

    # ------------------------------------------------------------------ public surface
    @property
    def bot_participant_id(self) -> str | None:
        if self._relay is not None and self._relay.local_uid is not None:
            return self._relay.local_uid
        return str(self.uid) if self.uid else None

    @property
    def callback_stats(self) -> Any:
        return self._relay.stats if self._relay is not None else None

    def make_token(self) -> str:
        """The token ``connect``/``renew_token`` get: a fresh AccessToken2 with a
        certificate, else the App ID (what Agora expects for projects without one)."""
        if self.certificate is None:
            return self.app_id
        token = build_rtc_token(
            self.app_id,
            self.certificate,
            self.channel,
            self.uid,
            role=ROLE_PUBLISHER,
            expire_s=self.token_expiry_s,
        )
        register_secret(token)
        return token

    async def join(self, events: TransportEvents) -> None:
        if self._released:
            raise TransportError("this Agora transport has already left; create a new one")
        self._loop = asyncio.get_running_loop()
        self._events = events
        # The SDK print()s from its native threads (and while importing): keep that off the
        # console until the call is over (see stdout.py).
        self._stdout = sdk_stdout.install()
        try:
            sdk = self._sdk_loader()
            await self._join(sdk, events)
        except BaseException:
            await self.leave()
            raise

    async def leave(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            await self._leave()
        finally:
            if self._stdout is not None:
                sdk_stdout.uninstall(self._stdout)
                self._stdout = None

    async def _leave(self) -> None:
        if self._relay is not None:
            self._relay.active = False
        with self._send_lock:
            self._publishing = False
        conn, service = self._conn, self._service
        self._conn = self._service = None
        if conn is None and service is None:
            return
        # Native teardown can block briefly; keep the loop responsive. The thread finishes
        # even if this coroutine is cancelled (Ctrl-C), and asyncio.run waits for it.
        await asyncio.to_thread(_release_native, conn, service)
        self._observers = ()

    def write_audio(self, pcm: bytes) -> None:
        if len(pcm) % _BYTES_PER_MS:
            pad = _BYTES_PER_MS - len(pcm) % _BYTES_PER_MS
            pcm = bytes(pcm) + b"\x00" * pad
            self.push_stats.padded += 1
        data = bytearray(pcm)  # the SDK needs a writable buffer (ctypes from_buffer)
        with self._send_lock:
            if not self._publishing or self._conn is None:
                self.push_stats.dropped_not_joined += 1
                return
            ret = self._conn.push_audio_pcm_data(data, SAMPLE_RATE, CHANNELS)
        if ret != 0:
            self.push_stats.push_errors += 1
            n = self.push_stats.push_errors
            if n <= 5 or n % 500 == 0:
                log.warning("agora: push_audio_pcm_data returned %s (%d errors)", ret, n)
        else:
            self.push_stats.chunks += 1

    def flush_audio(self) -> None:
        with self._send_lock:
            if not self._publishing or self._conn is None:
                return
            # Returns -1000 even when it worked (SDK quirk): the value carries no meaning.
            self._conn.interrupt_audio()
        self.push_stats.interrupts += 1

    # ------------------------------------------------------------------ join steps
    async def _join(self, sdk: AgoraSDK, events: TransportEvents) -> None:
        base = sdk.base
        assert self._loop is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        service = sdk.AgoraService()
        self._service = service
        initialize_service(
            service,
            base.AgoraServiceConfig(
                appid=self.app_id,
                audio_scenario=base.AudioScenarioType.AUDIO_SCENARIO_AI_SERVER,
                channel_profile=base.ChannelProfileType.CHANNEL_PROFILE_LIVE_BROADCASTING,
                enable_audio_processor=1,
                enable_audio_device=0,
                enable_video=0,
                log_path=str(self.log_dir / "agorasdk.log"),
                data_dir=str(self.log_dir),
                config_dir=str(self.log_dir),
            ),
            log_path=self.log_dir / "agorasdk.log",
        )
        conn = service.create_rtc_connection(
            base.RTCConnConfig(
                auto_subscribe_audio=1,
                auto_subscribe_video=0,
                client_role_type=base.ClientRoleType.CLIENT_ROLE_BROADCASTER,
                channel_profile=base.ChannelProfileType.CHANNEL_PROFILE_LIVE_BROADCASTING,
                audio_subs_options=base.AudioSubscriptionOptions(
                    packet_only=0,
                    pcm_data_only=1,
                    bytes_per_sample=2,
                    number_of_channels=CHANNELS,
                    sample_rate_hz=SAMPLE_RATE,
                ),
            ),
            base.RtcConnectionPublishConfig(
                audio_profile=base.AudioProfileType.AUDIO_PROFILE_DEFAULT,
                audio_scenario=base.AudioScenarioType.AUDIO_SCENARIO_AI_SERVER,
                is_publish_audio=True,
                is_publish_video=False,
                audio_publish_type=base.AudioPublishType.AUDIO_PUBLISH_TYPE_PCM,
                video_publish_type=base.VideoPublishType.VIDEO_PUBLISH_TYPE_NONE,
            ),
        )
        # The real constructor "returns None" from __init__ when the native create fails,
        # which leaves an object whose conn_handle is None.
        if conn is None or getattr(conn, "conn_handle", True) is None:
            raise TransportError("the Agora SDK could not create a connection")
        self._conn = conn

        relay = Relay(self._loop, events, self, str(self.uid) if self.uid else None)
        self._relay = relay
        classes = observer_classes(sdk)
        conn_obs = classes.connection(relay)
        frame_obs = classes.audio_frame(relay)
        user_obs = classes.local_user(relay)
        self._observers = (conn_obs, frame_obs, user_obs)
        self._connected = self._loop.create_future()

        _check(conn.register_observer(conn_obs), "register the connection observer")
        local_user = conn.get_local_user()
        if local_user is None:
            raise TransportError("the Agora SDK returned no local user for the connection")
        _check(
            local_user.set_playback_audio_frame_before_mixing_parameters(CHANNELS, SAMPLE_RATE),
            "set the audio frame format",
        )
        _check(conn.register_audio_frame_observer(frame_obs, 0, None), "observe audio frames")
        _check(conn.register_local_user_observer(user_obs), "observe the local user")

        ret = conn.connect(self.make_token(), self.channel, str(self.uid))
        if ret != 0:
            raise TransportError(
                f"Agora refused to start connecting to channel {self.channel!r} (error {ret})"
            )
        try:
            local_uid = await asyncio.wait_for(asyncio.shield(self._connected), self.join_timeout_s)
        except TimeoutError:
            raise TransportError(
                f"timed out after {self.join_timeout_s:g} s joining Agora channel "
                f"{self.channel!r}: check the network and AGORA_APP_ID"
            ) from None
        _check(conn.publish_audio(), "publish the bot's audio track")
        with self._send_lock:
            self._publishing = True
        self._joined = True
        log.info("agora: joined channel %r as uid %s", self.channel, local_uid)

    # ------------------------------------------------------------------ loop-side handlers
    # Scheduled by the observers with call_soon_threadsafe; they run on the event loop.
    def on_connected(self, local_uid: str) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(local_uid)

    def on_failure(self, reason: int) -> None:
        self._fail(reasons.describe(reason))

    def on_disconnected(self, reason: int) -> None:
        if self._released or reason == reasons.LEAVE_CHANNEL:
            return
        self._fail(f"disconnected from Agora: {reasons.describe(reason)}")

    def on_connection_lost(self) -> None:
        log.warning("agora: connection lost; the SDK keeps trying to reconnect")

    def on_token_will_expire(self) -> None:
        if self._released or self._conn is None:
            return
        if self.certificate is None:
            log.warning(
                "agora: the token will expire, but no AGORA_APP_CERTIFICATE is set to renew it"
            )
            return
        try:
            token = self.make_token()
        except ValueError as exc:
            self._fail(f"could not build a new Agora token: {exc}")
            return
        ret = self._conn.renew_token(token)
        if ret != 0:
            log.error("agora: renew_token returned %s; the call ends when the token expires", ret)
            return
        self.push_stats.renewals += 1
        log.info("agora: token renewed (valid %d s)", self.token_expiry_s)

    def on_sdk_error(self, code: int, message: str) -> None:
        log.error("agora: SDK error %s: %s", code, message)

    def on_publish_failed(self, error: int) -> None:
        self._fail(f"Agora could not publish the bot's audio (error {error})")

    def _fail(self, message: str) -> None:
        if self._released:
            return
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(TransportError(message))
            return
        if self._joined and not self._ended and self._events is not None:
            self._ended = True
            self._events.ended("agora connection failed", error=message)


def _check(ret: Any, what: str) -> None:
    if isinstance(ret, int) and ret < 0:
        raise TransportError(f"the Agora SDK could not {what} (error {ret})")


def _release_native(conn: Any, service: Any) -> None:
    """disconnect -> connection.release -> service.release; every step once, each
    attempted even if an earlier one failed (a failure there is logged, not raised)."""
    steps: list[tuple[str, Any]] = []
    if conn is not None:
        steps += [("disconnect", conn.disconnect), ("connection release", conn.release)]
    if service is not None:
        steps.append(("service release", service.release))
    for what, fn in steps:
        try:
            fn()
        except Exception as exc:  # teardown must finish
            log.error("agora: %s failed: %r", what, exc)
