"""The native layer and the backend of the Agora SDK double, plus the controls tests use.

The real ``agora`` Python package is a ctypes wrapper around ``libagora_rtc_sdk``; the
double's ``agora`` package (next to this file) mirrors that wrapper and calls this module
where the real one calls the native library. This module plays the native SDK *and*
Agora's servers:

* one native thread per connection ticking every 10 ms, from which every observer callback
  arrives (never the caller's thread), exceptions in callbacks are recorded and swallowed the
  way ctypes prints and swallows them;
* tokens are checked like Agora does: App ID as token for projects without a certificate,
  AccessToken2 with a valid signature, matching channel/uid and unexpired otherwise;
  ``on_token_privilege_will_expire`` fires ``token_warning_s`` before expiry;
* remote users deliver their PCM as 10 ms frames at the rate the local user asked for;
* pushed bot audio is queued in the track and drained 10 ms per tick into what the room
  hears; ``interrupt_audio`` empties the queue;
* misuse is recorded in :attr:`Cloud.violations` (tests assert there is none).

Decoding tokens here is deliberately independent of botrun's token builder.
"""

from __future__ import annotations

import base64
import collections
import hmac
import itertools
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

TICK_S = 0.010

# Connection states and change reasons (native enums).
STATE_DISCONNECTED, STATE_CONNECTING, STATE_CONNECTED, STATE_RECONNECTING, STATE_FAILED = (
    1,
    2,
    3,
    4,
    5,
)
REASON_CONNECTING = 0
REASON_JOIN_SUCCESS = 1
REASON_BANNED = 3
REASON_LEAVE = 5
REASON_INVALID_APP_ID = 6
REASON_INVALID_TOKEN = 8
REASON_TOKEN_EXPIRED = 9


@dataclass
class RemoteUser:
    uid: str
    pending: bytearray = field(default_factory=bytearray)


@dataclass
class Channel:
    name: str
    users: dict[str, RemoteUser] = field(default_factory=dict)
    members: list[NativeConnection] = field(default_factory=list)
    heard: bytearray = field(default_factory=bytearray)


@dataclass
class TokenInfo:
    expires_at: float | None  # unix time; None = never (App ID as token)
    can_publish: bool


def _take(buf: bytes, fmt: str) -> tuple[Any, bytes]:
    size = struct.calcsize(fmt)
    return struct.unpack(fmt, buf[:size])[0], buf[size:]


def _take_str(buf: bytes) -> tuple[bytes, bytes]:
    n, buf = _take(buf, "<H")
    return buf[:n], buf[n:]


def check_token(
    app_id: str, certificate: str | None, token: str, channel: str, uid: str
) -> tuple[int | None, TokenInfo | None]:
    """Agora's admission check: (failure reason, None) or (None, token info)."""
    if certificate is None:
        if token in ("", app_id):
            return None, TokenInfo(None, True)
        return REASON_INVALID_TOKEN, None
    if not token.startswith("007"):
        return REASON_INVALID_TOKEN, None
    try:
        raw = zlib.decompress(base64.b64decode(token[3:], validate=True))
        signature, signed = _take_str(raw)
        rest = signed
        tok_app, rest = _take_str(rest)
        issued, rest = _take(rest, "<I")
        expire, rest = _take(rest, "<I")
        salt, rest = _take(rest, "<I")
        count, rest = _take(rest, "<H")
        rtc: tuple[dict[int, int], bytes, bytes] | None = None
        for _ in range(count):
            stype, rest = _take(rest, "<H")
            nprivs, rest = _take(rest, "<H")
            privs: dict[int, int] = {}
            for _ in range(nprivs):
                k, rest = _take(rest, "<H")
                v, rest = _take(rest, "<I")
                privs[k] = v
            if stype != 1:
                return REASON_INVALID_TOKEN, None  # the double knows only RTC services
            chan, rest = _take_str(rest)
            tok_uid, rest = _take_str(rest)
            rtc = (privs, chan, tok_uid)
    except (ValueError, zlib.error, struct.error):
        return REASON_INVALID_TOKEN, None
    key = hmac.new(struct.pack("<I", issued), certificate.encode(), sha256).digest()
    key = hmac.new(struct.pack("<I", salt), key, sha256).digest()
    if not hmac.compare_digest(hmac.new(key, signed, sha256).digest(), signature):
        return REASON_INVALID_TOKEN, None
    if tok_app.decode() != app_id or rtc is None:
        return REASON_INVALID_TOKEN, None
    privs, chan, tok_uid = rtc
    if chan.decode() != channel or tok_uid.decode() not in ("", uid) or 1 not in privs:
        return REASON_INVALID_TOKEN, None
    lifetimes = [expire] + [privs[1]] * (privs[1] != 0)
    expires_at = issued + min(lifetimes)
    if expires_at <= time.time():
        return REASON_TOKEN_EXPIRED, None
    return None, TokenInfo(float(expires_at), 2 in privs)


class Cloud:
    """Process-wide state of the double (one per test: call :meth:`reset`)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.projects: dict[str, str | None] = {}
            self.channels: dict[str, Channel] = {}
            self.trace: list[str] = []
            self.violations: list[str] = []
            self.callback_errors: list[str] = []
            self.callback_threads: set[int] = set()
            self.connections: list[NativeConnection] = []
            self.pushes: list[tuple[float, int]] = []
            self.max_queued_bytes = 0
            self.renewed_tokens: list[str] = []
            # Faults and knobs.
            self.connect_return = 0
            self.connect_delay_s = 0.02
            self.never_answer = False
            self.token_warning_s = 30.0
            self._uids = itertools.count(1_000_001)

    # ------------------------------------------------------------------ test controls
    def add_project(self, app_id: str, certificate: str | None = None) -> None:
        with self.lock:
            self.projects[app_id] = certificate

    def channel(self, name: str) -> Channel:
        with self.lock:
            return self.channels.setdefault(name, Channel(name))

    def user_joins(self, channel: str, uid: str) -> None:
        with self.lock:
            ch = self.channel(channel)
            ch.users[uid] = RemoteUser(uid)
            for conn in ch.members:
                conn.post(conn.deliver_user_joined, uid)

    def user_speaks(self, channel: str, uid: str, pcm16k: bytes) -> None:
        """Queue 16 kHz mono PCM the user says (delivered 10 ms per tick)."""
        with self.lock:
            self.channel(channel).users[uid].pending.extend(pcm16k)

    def user_leaves(self, channel: str, uid: str, reason: int = 0) -> None:
        with self.lock:
            ch = self.channel(channel)
            ch.users.pop(uid, None)
            for conn in ch.members:
                conn.post(conn.deliver_user_left, uid, reason)

    def kick(self, channel: str) -> None:
        """The server bans every bot connection in ``channel`` (kicking rule / REST API)."""
        with self.lock:
            for conn in list(self.channel(channel).members):
                conn.post(conn.fail, REASON_BANNED)

    def heard(self, channel: str) -> bytes:
        with self.lock:
            return bytes(self.channel(channel).heard)

    def record(self, entry: str) -> None:
        with self.lock:
            self.trace.append(entry)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.005)
        return predicate()


CLOUD = Cloud()


class NativeConnection:
    """What ``agora_rtc_conn_create`` returns: connection + local user + PCM track."""

    def __init__(self, cloud: Cloud, app_id: str, auto_subscribe_audio: int) -> None:
        self.cloud = cloud
        self.app_id = app_id
        self.auto_subscribe_audio = auto_subscribe_audio
        self.state = STATE_DISCONNECTED
        self.channel: Channel | None = None
        self.uid = ""
        self.token_info: TokenInfo | None = None
        self.token = ""
        self.warned = False
        self.conn_observer: Any = None
        self.conn_wrapper: Any = None
        self.audio_observer: Any = None
        self.local_user_wrapper: Any = None
        self.user_observer: Any = None
        self.frame_params: tuple[int, int] | None = None
        self.published = False
        self.queue = bytearray()
        self.announced: set[str] = set()  # remote users whose join this connection delivered
        self.destroyed = False
        self._posted: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agora-native", daemon=True)
        self._thread.start()
        with cloud.lock:
            cloud.connections.append(self)

    # ------------------------------------------------------------------ native API
    def connect(self, token: str, channel: str, uid: str) -> int:
        cloud = self.cloud
        if cloud.connect_return != 0:
            return cloud.connect_return
        if self.state != STATE_DISCONNECTED:
            return -8  # ERR_INVALID_STATE
        self.state = STATE_CONNECTING
        self.post(self._admit, token, channel, uid, time.monotonic() + cloud.connect_delay_s)
        return 0

    def disconnect(self) -> int:
        with self.cloud.lock:
            if self.channel is not None and self in self.channel.members:
                self.channel.members.remove(self)
        was = self.state
        self.state = STATE_DISCONNECTED
        self.published = False
        self.queue.clear()
        if was in (STATE_CONNECTED, STATE_CONNECTING):
            self.post(self._notify_conn, "on_disconnected", REASON_LEAVE)
        return 0

    def renew_token(self, token: str) -> int:
        if self.channel is None:
            return -8
        reason, info = check_token(
            self.app_id, self.cloud.projects.get(self.app_id), token, self.channel.name, self.uid
        )
        if reason is not None or info is None:
            return -2  # ERR_INVALID_ARGUMENT
        self.token_info = info
        self.token = token
        self.warned = False
        with self.cloud.lock:
            self.cloud.renewed_tokens.append(token)
        return 0

    def push(self, data: bytes) -> int:
        with self.cloud.lock:
            self.queue.extend(data)
            self.cloud.pushes.append((time.monotonic(), len(data)))
            self.cloud.max_queued_bytes = max(self.cloud.max_queued_bytes, len(self.queue))
        return 0

    def clear_queue(self) -> None:
        with self.cloud.lock:
            self.queue.clear()

    def destroy(self) -> None:
        self.destroyed = True
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)

    # ------------------------------------------------------------------ native thread
    def post(self, fn: Callable[..., None], *args: Any) -> None:
        self._posted.append((fn, args))

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            next_tick += TICK_S
            delay = next_tick - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            pending = len(self._posted)
            for _ in range(pending):
                fn, args = self._posted.popleft()
                fn(*args)
            if self.state == STATE_CONNECTED:
                self._tick_connected()

    def _tick_connected(self) -> None:
        ch = self.channel
        assert ch is not None
        info = self.token_info
        if info is not None and info.expires_at is not None:
            left = info.expires_at - time.time()
            if left <= 0:
                self.state = STATE_FAILED
                self._notify_conn("on_token_privilege_did_expire")
                self._notify_conn("on_connection_failure", REASON_TOKEN_EXPIRED)
                return
            if left <= self.cloud.token_warning_s and not self.warned:
                self.warned = True
                self._call(
                    self.conn_observer,
                    "on_token_privilege_will_expire",
                    self.conn_wrapper,
                    self.token,
                )
        with self.cloud.lock:
            frames = []
            for user in ch.users.values():
                # Like the SDK, a user is heard only once this connection was told it joined
                # (user_joins posts the join to the next tick; audio queued meanwhile waits).
                if user.pending and user.uid in self.announced:
                    chunk = bytes(user.pending[:320])
                    del user.pending[:320]
                    frames.append((user.uid, chunk.ljust(320, b"\x00")))
            if self.published and self.queue:
                sent = bytes(self.queue[:320])
                del self.queue[:320]
                ch.heard.extend(sent)
        if self.audio_observer is None or not self.auto_subscribe_audio:
            return
        if frames and self.frame_params is None:
            self.cloud.violation("audio observer registered before the frame parameters")
            return
        for uid, pcm in frames:
            self._deliver_frame(uid, pcm)

    def _deliver_frame(self, uid: str, pcm16k: bytes) -> None:
        from agora.rtc.agora_base import AudioFrame

        channels, rate = self.frame_params or (1, 16000)
        samples = rate // 100
        if rate != 16000 or channels != 1:
            # The double models what botrun asks for; anything else is a test failure.
            self.cloud.violation(f"frame parameters {channels} ch @ {rate} Hz not modelled")
            return
        frame = AudioFrame(
            type=0,
            samples_per_channel=samples,
            bytes_per_sample=2,
            channels=channels,
            samples_per_sec=rate,
            buffer=bytearray(pcm16k),
            render_time_ms=0,
            avsync_type=0,
            presentation_ms=0,
            audio_track_number=0,
            rtp_timestamp=0,
            far_field_flag=0,
            rms=0,
            voice_prob=0,
            music_prob=0,
            pitch=0,
        )
        assert self.channel is not None
        ret = self._call(
            self.audio_observer,
            "on_playback_audio_frame_before_mixing",
            self.local_user_wrapper,
            self.channel.name,
            uid,
            frame,
            -1,
            None,
        )
        if not isinstance(ret, int):
            self.cloud.violation(f"on_playback_audio_frame_before_mixing returned {ret!r}")

    def _admit(self, token: str, channel: str, uid: str, not_before: float) -> None:
        if self.state != STATE_CONNECTING:
            return
        if time.monotonic() < not_before or self.cloud.never_answer:
            self.post(self._admit, token, channel, uid, not_before)
            return
        self.channel = self.cloud.channel(channel)
        self._notify_conn("on_connecting", REASON_CONNECTING)
        projects = self.cloud.projects
        if self.app_id not in projects:
            self.fail(REASON_INVALID_APP_ID)
            return
        self.uid = uid if uid != "0" else str(next(self.cloud._uids))
        reason, info = check_token(self.app_id, projects[self.app_id], token, channel, self.uid)
        if reason is not None:
            self.fail(reason)
            return
        self.token_info = info
        self.token = token
        self.state = STATE_CONNECTED
        with self.cloud.lock:
            self.channel.members.append(self)
            present = list(self.channel.users)
        self._notify_conn("on_connected", REASON_JOIN_SUCCESS)
        for other in present:
            self.deliver_user_joined(other)

    def fail(self, reason: int) -> None:
        self.state = STATE_FAILED
        with self.cloud.lock:
            if self.channel is not None and self in self.channel.members:
                self.channel.members.remove(self)
        self._notify_conn("on_connection_failure", reason)

    def deliver_user_joined(self, uid: str) -> None:
        if self.state == STATE_CONNECTED:
            self.announced.add(uid)
            self._call(self.conn_observer, "on_user_joined", self.conn_wrapper, uid)

    def deliver_user_left(self, uid: str, reason: int) -> None:
        if self.state == STATE_CONNECTED:
            self._call(self.conn_observer, "on_user_left", self.conn_wrapper, uid, reason)

    def publish_failed(self, error: int) -> None:
        self._call(
            self.user_observer,
            "on_audio_track_publication_failure",
            self.local_user_wrapper,
            None,
            error,
        )

    def _notify_conn(self, name: str, *args: Any) -> None:
        from agora.rtc.agora_base import RTCConnInfo

        if name in ("on_token_privilege_did_expire",):
            self._call(self.conn_observer, name, self.conn_wrapper)
            return
        info = RTCConnInfo(
            id=id(self),
            channel_id=self.channel.name if self.channel else "",
            state=self.state,
            local_user_id=self.uid,
            internal_uid=int(self.uid or 0),
        )
        self._call(self.conn_observer, name, self.conn_wrapper, info, *args)

    def _call(self, observer: Any, name: str, *args: Any) -> Any:
        """Invoke a Python observer the way the ctypes trampolines do."""
        if observer is None or self.destroyed:
            return None
        with self.cloud.lock:
            self.cloud.callback_threads.add(threading.get_ident())
        try:
            return getattr(observer, name)(*args)
        except Exception as exc:  # ctypes prints the traceback and carries on
            with self.cloud.lock:
                self.cloud.callback_errors.append(f"{name}: {exc!r}")
            return None
