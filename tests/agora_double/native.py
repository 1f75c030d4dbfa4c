"""A fake ``libagora_rtc_sdk`` at the ctypes boundary, plus Agora's servers behind it.

The real ``agora.rtc`` package (the published, unmodified wrapper, see sdist.py) loads the
native library with ``ctypes.CDLL`` and calls C functions on it after setting their
``argtypes``/``restype``. :class:`FakeAgoraLib` stands in for that CDLL object:

* every attribute is a :class:`NativeFunction` that keeps the ``argtypes``/``restype`` the
  wrapper sets; a call goes through a real C function pointer of exactly that prototype (a
  ctypes thunk), so ctypes converts the wrapper's arguments as it would for the real library
  (``byref`` structs, ``from_buffer`` arrays, ``c_char_p`` buffers, 64-bit ints) and the
  fake receives native values (addresses, ints, ``bytes``);
* observers are what the wrapper registers natively: pointers to its ``*Inner`` ctypes
  structures of C function pointers. Callbacks are fired by reading those function pointers
  and calling them with native arguments (structs filled field by field, ``char*`` user ids,
  buffer addresses), so they run through the wrapper's own trampolines (``_on_connected``,
  ``_on_playback_audio_frame_before_mixing``, ...), on this module's "native" threads;
* :class:`Cloud` plays Agora's servers: projects, tokens (checked like Agora checks them),
  remote users and their speech, what the channel hears, the bot being kicked.

Functions the wrapper calls but the model gives no behaviour are answered with the C
default of their return type (0 / a fresh handle / nothing) and listed in
:attr:`Cloud.defaulted`, so a test sees exactly which native calls were not modelled.
Misuse (a call on a released handle, an exception inside the fake) goes to
:attr:`Cloud.violations`; exceptions that escape the wrapper's callbacks into "native" code
are recorded in :attr:`Cloud.callback_errors` (ctypes prints them to stderr and carries on).
"""

from __future__ import annotations

import base64
import collections
import ctypes
import hmac
import itertools
import struct
import sys
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
ERR_INVALID_STATE = -8
ERR_INVALID_ARGUMENT = -2
#: The AI-QoS capability type the wrapper looks for (``capability_type == 19``).
CAPABILITY_AIQOS = 19


# ---------------------------------------------------------------------------------- tokens
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
    """Agora's admission check: (failure reason, None) or (None, token info).
    Decoding is deliberately independent of botrun's token builder."""
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
                return REASON_INVALID_TOKEN, None  # only RTC services are modelled
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


# ---------------------------------------------------------------------------------- servers
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


class Cloud:
    """Agora's servers and the test controls (one per test)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.version = ""  # the published wrapper in front of this cloud (set by the fixture)
        self.lib: Any = None
        self.projects: dict[str, str | None] = {}
        self.channels: dict[str, Channel] = {}
        self.trace: list[str] = []  # native calls, in order
        self.defaulted: set[str] = set()
        self.violations: list[str] = []
        self.callback_errors: list[str] = []
        self.callback_threads: set[int] = set()
        self.connections: list[NativeConnection] = []
        self.renewed_tokens: list[str] = []
        self.pushes: list[tuple[float, int]] = []  # (monotonic time, bytes) per PCM push
        self.max_queued_bytes = 0
        # Faults and knobs.
        self.init_return = 0  # agora_service_initialize
        self.extension_return = 0  # agora_service_enable_extension
        self.connect_return = 0
        self.connect_delay_s = 0.02
        self.never_answer = False
        self.token_warning_s = 30.0
        self.aiqos_supported = True  # what on_capabilities_changed reports after joining
        self._uids = itertools.count(1_000_001)

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

    def shutdown(self) -> None:
        for conn in list(self.connections):
            conn.stop()


# ---------------------------------------------------------------------------------- natives
@dataclass
class Track:
    sender: int
    queue: bytearray = field(default_factory=bytearray)
    destroyed: bool = False


class NativeConnection:
    """What ``agora_rtc_conn_create`` makes: connection + local user, with a native thread
    that ticks every 10 ms and from which every observer callback arrives."""

    def __init__(self, lib: FakeAgoraLib, handle: int, user_handle: int, auto_sub: int) -> None:
        self.lib = lib
        self.cloud = lib.cloud
        self.handle = handle
        self.user_handle = user_handle
        self.auto_subscribe_audio = auto_sub
        self.state = STATE_DISCONNECTED
        self.channel: Channel | None = None
        self.uid = ""
        self.token_info: TokenInfo | None = None
        self.token = ""
        self.warned = False
        self.conn_observer: Any = None  # POINTER(RTCConnectionObserverInner)
        self.audio_observer: Any = None  # POINTER(AudioFrameObserverInner)
        self.user_observer: Any = None  # POINTER(RTCLocalUserObserverInner)
        self.capabilities_observer: int | None = None  # handle from ..._observer_create
        self.frame_params: tuple[int, int] | None = None
        self.published: Track | None = None
        self.announced: set[str] = set()
        self.destroyed = False
        self._keep: list[Any] = []  # native memory handed to callbacks, alive while in use
        self._posted: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agora-native", daemon=True)
        self._thread.start()
        with self.cloud.lock:
            self.cloud.connections.append(self)

    # ------------------------------------------------------------------ API (caller thread)
    def connect(self, token: str, channel: str, uid: str) -> int:
        if self.cloud.connect_return != 0:
            return self.cloud.connect_return
        if self.state != STATE_DISCONNECTED:
            return ERR_INVALID_STATE
        self.state = STATE_CONNECTING
        deadline = time.monotonic() + self.cloud.connect_delay_s
        self.post(self._admit, token, channel, uid, deadline)
        return 0

    def disconnect(self) -> int:
        with self.cloud.lock:
            if self.channel is not None and self in self.channel.members:
                self.channel.members.remove(self)
        was = self.state
        self.state = STATE_DISCONNECTED
        if was in (STATE_CONNECTED, STATE_CONNECTING):
            self.post(self._notify_conn, "on_disconnected", REASON_LEAVE)
        return 0

    def renew_token(self, token: str) -> int:
        if self.channel is None:
            return ERR_INVALID_STATE
        project_cert = self.cloud.projects.get(self.lib.app_id or "")
        reason, info = check_token(
            self.lib.app_id or "", project_cert, token, self.channel.name, self.uid
        )
        if reason is not None or info is None:
            return ERR_INVALID_ARGUMENT
        self.token_info, self.token, self.warned = info, token, False
        with self.cloud.lock:
            self.cloud.renewed_tokens.append(token)
        return 0

    def stop(self) -> None:
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
            for _ in range(len(self._posted)):
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
                self._fire(self.conn_observer, "on_token_privilege_did_expire", self.handle)
                self._notify_conn("on_connection_failure", REASON_TOKEN_EXPIRED)
                return
            if left <= self.cloud.token_warning_s and not self.warned:
                self.warned = True
                self._fire(
                    self.conn_observer,
                    "on_token_privilege_will_expire",
                    self.handle,
                    self.token.encode(),
                )
        with self.cloud.lock:
            frames = []
            for user in ch.users.values():
                # A user is heard only once this connection was told it joined.
                if user.pending and user.uid in self.announced:
                    chunk = bytes(user.pending[:320])
                    del user.pending[:320]
                    frames.append((user.uid, chunk.ljust(320, b"\x00")))
            track = self.published
            if track is not None and track.queue:
                ch.heard.extend(track.queue[:320])
                del track.queue[:320]
        if self.audio_observer is None or not self.auto_subscribe_audio:
            return
        if frames and self.frame_params is None:
            self.cloud.violation("audio observer registered before the frame parameters")
            return
        for uid, pcm in frames:
            self._deliver_frame(uid, pcm)

    def _deliver_frame(self, uid: str, pcm16k: bytes) -> None:
        channels, rate = self.frame_params or (1, 16000)
        if rate != 16000 or channels != 1:
            self.cloud.violation(f"frame parameters {channels} ch @ {rate} Hz not modelled")
            return
        callback = self._callback(self.audio_observer, "on_playback_audio_frame_before_mixing")
        if callback is None:
            return
        frame_type = type(callback)._argtypes_[3]  # POINTER(AudioFrameInner)
        buf = ctypes.create_string_buffer(pcm16k, len(pcm16k))
        frame = _fill(
            frame_type._type_(),
            type=0,
            samples_per_channel=rate // 100,
            bytes_per_sample=2,
            channels=channels,
            samples_per_sec=rate,
            buffer=ctypes.addressof(buf),
        )
        assert self.channel is not None
        ret = self._invoke(
            callback,
            "on_playback_audio_frame_before_mixing",
            self.user_handle,
            self.channel.name.encode(),
            uid.encode(),
            ctypes.byref(frame),
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
        app_id = self.lib.app_id or ""
        if app_id not in projects:
            self.fail(REASON_INVALID_APP_ID)
            return
        self.uid = uid if uid != "0" else str(next(self.cloud._uids))
        reason, info = check_token(app_id, projects[app_id], token, channel, self.uid)
        if reason is not None:
            self.fail(reason)
            return
        self.token_info, self.token = info, token
        self.state = STATE_CONNECTED
        with self.cloud.lock:
            self.channel.members.append(self)
            present = list(self.channel.users)
        self._notify_conn("on_connected", REASON_JOIN_SUCCESS)
        self._capabilities_changed()
        for other in present:
            self.deliver_user_joined(other)

    def _capabilities_changed(self) -> None:
        """The channel's capabilities, as the native SDK reports them after joining (the
        wrapper checks AI-QoS support and prints what it decided)."""
        handle = self.capabilities_observer
        observer = self.lib.objects.get(handle) if handle else None
        callback = self._callback(observer, "on_capabilities_changed")
        if callback is None:
            return
        caps_type = type(callback)._argtypes_[1]._type_
        map_type = dict(caps_type._fields_)["item_map"]._type_
        item_ptr_type = dict(map_type._fields_)["item"]
        name = b"SUPPORT" if self.cloud.aiqos_supported else b"NOT_SUPPORT"
        items = (item_ptr_type._type_ * 1)()
        _fill(items[0], id=1, name=name)
        item_map = _fill(map_type(), item=ctypes.cast(items, item_ptr_type), size=1)
        caps = (caps_type * 1)()
        _fill(caps[0], item_map=ctypes.pointer(item_map), capability_type=CAPABILITY_AIQOS)
        self._keep = [items, item_map, caps]
        self._invoke(callback, "on_capabilities_changed", handle, caps, 1)

    def fail(self, reason: int) -> None:
        self.state = STATE_FAILED
        with self.cloud.lock:
            if self.channel is not None and self in self.channel.members:
                self.channel.members.remove(self)
        self._notify_conn("on_connection_failure", reason)

    def deliver_user_joined(self, uid: str) -> None:
        if self.state != STATE_CONNECTED:
            return
        self.announced.add(uid)
        self._fire(self.conn_observer, "on_user_joined", self.handle, uid.encode())
        if self.auto_subscribe_audio:
            remote_track = self.lib.new_handle(f"remote-audio:{uid}")
            self._fire(
                self.user_observer,
                "on_user_audio_track_subscribed",
                self.user_handle,
                uid.encode(),
                remote_track,
            )

    def deliver_user_left(self, uid: str, reason: int) -> None:
        if self.state == STATE_CONNECTED:
            self._fire(self.conn_observer, "on_user_left", self.handle, uid.encode(), reason)

    def _notify_conn(self, name: str, reason: int) -> None:
        callback = self._callback(self.conn_observer, name)
        if callback is None:
            return
        info = _fill(
            type(callback)._argtypes_[1]._type_(),
            id=self.handle,
            channel_id=(self.channel.name if self.channel else "").encode(),
            state=self.state,
            local_user_id=self.uid.encode(),
            internal_uid=int(self.uid or 0),
        )
        self._invoke(callback, name, self.handle, ctypes.byref(info), reason)

    # ------------------------------------------------------------------ firing callbacks
    def _callback(self, observer_ptr: Any, name: str) -> Any:
        """The C function pointer ``name`` of a registered observer struct, or None."""
        if observer_ptr is None or self.destroyed:
            return None
        struct_ = observer_ptr.contents if hasattr(observer_ptr, "contents") else observer_ptr
        fn = getattr(struct_, name, None)
        return fn if fn else None  # a NULL function pointer is falsy

    def _fire(self, observer_ptr: Any, name: str, *args: Any) -> Any:
        callback = self._callback(observer_ptr, name)
        return None if callback is None else self._invoke(callback, name, *args)

    def _invoke(self, callback: Any, name: str, *args: Any) -> Any:
        with self.cloud.lock:
            self.cloud.callback_threads.add(threading.get_ident())
        # An exception in a ctypes callback is printed by ctypes ("Exception ignored on
        # calling ctypes callback function") and the C caller gets 0: record it instead.
        errors: list[str] = []

        def hook(u: Any) -> None:
            errors.append(f"{name}: {u.exc_value!r}")

        with _CALLBACK_LOCK:
            old_hook = sys.unraisablehook
            sys.unraisablehook = hook
            try:
                ret = callback(*args)
            finally:
                sys.unraisablehook = old_hook
        if errors:
            with self.cloud.lock:
                self.cloud.callback_errors.extend(errors)
        return ret


def _fill(struct_: Any, **values: Any) -> Any:
    """Set the fields a native producer fills, by name (fields a version lacks are skipped,
    fields not named stay zero, as after memset)."""
    names = {n for n, *_ in type(struct_)._fields_}
    for key, value in values.items():
        if key in names:
            setattr(struct_, key, value)
    return struct_


# ---------------------------------------------------------------------------------- ctypes
_CALLBACK_LOCK = threading.RLock()  # one callback at a time: the unraisable hook is global


def _simple(restype: Any) -> bool:
    """ctypes callbacks may only return simple types (or nothing)."""
    return restype is None or isinstance(getattr(restype, "_type_", None), str)


class NativeFunction:
    """One exported C function: the wrapper sets ``argtypes``/``restype`` on it (as on a
    ctypes ``_FuncPtr``), and each call goes through a real C function pointer with that
    prototype into :meth:`FakeAgoraLib.dispatch`."""

    def __init__(self, lib: FakeAgoraLib, name: str) -> None:
        self.lib = lib
        self.__name__ = name
        self.argtypes: list[Any] | None = None
        self.restype: Any = ctypes.c_int  # the ctypes default
        self._compiled: dict[tuple[Any, ...], Any] = {}

    def __call__(self, *args: Any) -> Any:
        if self.argtypes is None:
            argtypes = tuple(_infer(a) for a in args)
        else:
            argtypes = tuple(self.argtypes)
            if len(args) != len(argtypes):
                raise TypeError(
                    f"this function takes {len(argtypes)} arguments ({len(args)} given)"
                )
        key = (self.restype, argtypes)
        pair = self._compiled.get(key)
        if pair is None:
            restype = self.restype
            thunk_res = restype if _simple(restype) else ctypes.c_void_p
            name, lib = self.__name__, self.lib

            def enter(*native_args: Any) -> Any:
                return lib.dispatch(name, restype, native_args)

            thunk = ctypes.CFUNCTYPE(thunk_res, *argtypes)(enter)
            caller = ctypes.cast(thunk, ctypes.CFUNCTYPE(restype, *argtypes))
            pair = self._compiled[key] = (thunk, caller)
        return pair[1](*args)


def _infer(arg: Any) -> Any:
    if isinstance(arg, int):
        return ctypes.c_int
    if isinstance(arg, bytes):
        return ctypes.c_char_p
    if arg is None:
        return ctypes.c_void_p
    return type(arg)


class FakeAgoraLib:
    """The object ``ctypes.CDLL(".../libagora_rtc_sdk.so")`` returns under test."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.app_id: str | None = None
        self.objects: dict[int, Any] = {}
        self.kinds: dict[int, str] = {}
        self.released: set[int] = set()
        self._handles = itertools.count(0x10000, 0x10)
        self._functions: dict[str, NativeFunction] = {}

    def __getattr__(self, name: str) -> NativeFunction:
        if not name.startswith("agora_"):
            raise AttributeError(name)
        fn = self._functions.get(name)
        if fn is None:
            fn = self._functions[name] = NativeFunction(self, name)
        return fn

    def new_handle(self, kind: str, obj: Any = None) -> int:
        handle = next(self._handles)
        self.kinds[handle] = kind
        self.objects[handle] = obj
        return handle

    def _live(self, handle: int | None, kind: str, call: str) -> Any:
        if handle is None or self.kinds.get(handle) != kind:
            self.cloud.violation(f"{call}: {handle!r} is not a {kind} handle")
            return None
        if handle in self.released:
            self.cloud.violation(f"{call}: {kind} handle used after release")
            return None
        return self.objects.get(handle)

    def dispatch(self, name: str, restype: Any, args: tuple[Any, ...]) -> Any:
        self.cloud.record(name)
        impl = getattr(self, "c_" + name, None)
        try:
            if impl is not None:
                result = impl(*args)
                if result is None and restype is not None and restype is not ctypes.c_void_p:
                    self.cloud.violation(f"{name}: the fake returned nothing for {restype}")
                    return 0
                return result
            self.cloud.defaulted.add(name)
            if restype is ctypes.c_void_p:
                return self.new_handle(name)
            return 0 if restype is not None else None
        except Exception as exc:  # a bug in the fake: never let it pass silently
            self.cloud.violation(f"{name}: fake raised {exc!r}")
            return -1 if restype is ctypes.c_int else None

    # ------------------------------------------------------------------ service
    def c_agora_service_create(self) -> int:
        return self.new_handle("service", {"inited": False})

    def c_agora_service_initialize(self, service: int, config: Any) -> int:
        state = self._live(service, "service", "agora_service_initialize")
        if state is None:
            return -7
        if self.cloud.init_return != 0:
            return self.cloud.init_return
        self.app_id = (config.contents.app_id or b"").decode()
        state["inited"] = True
        return 0

    def c_agora_service_enable_extension(self, service: int, *args: Any) -> int:
        self._live(service, "service", "agora_service_enable_extension")
        return self.cloud.extension_return

    def c_agora_service_create_media_node_factory(self, service: int) -> int | None:
        state = self._live(service, "service", "create_media_node_factory")
        return self.new_handle("factory") if state and state["inited"] else None

    def c_agora_service_release(self, service: int) -> int:
        if self._live(service, "service", "agora_service_release") is None:
            return -1
        live = [c for c in self.cloud.connections if not c.destroyed]
        if live:
            self.cloud.violation("service released while a connection is alive")
        self.released.add(service)
        return 0

    def c_agora_media_node_factory_destroy(self, factory: int) -> int:
        if self._live(factory, "factory", "agora_media_node_factory_destroy") is None:
            return -1
        self.released.add(factory)
        return 0

    def c_agora_media_node_factory_create_audio_pcm_data_sender(self, factory: int) -> int:
        self._live(factory, "factory", "create_audio_pcm_data_sender")
        return self.new_handle("sender")

    def _create_track(self, service: int, sender: int) -> int:
        self._live(service, "service", "create_custom_audio_track_pcm")
        self._live(sender, "sender", "create_custom_audio_track_pcm")
        return self.new_handle("track", Track(sender))

    def c_agora_service_create_custom_audio_track_pcm(self, service: int, sender: int) -> int:
        return self._create_track(service, sender)

    def c_agora_service_create_direct_custom_audio_track_pcm(
        self, service: int, sender: int
    ) -> int:
        return self._create_track(service, sender)

    def c_agora_audio_pcm_data_sender_send(
        self,
        sender: int,
        data: int,
        timestamp: int,
        pts: int,
        samples_per_channel: int,
        bytes_per_sample: int,
        channels: int,
        rate: int,
    ) -> int:
        self._live(sender, "sender", "agora_audio_pcm_data_sender_send")
        if (bytes_per_sample, channels, rate) != (2, 1, 16000):
            self.cloud.violation(f"pushed {bytes_per_sample * 8}-bit {channels} ch @ {rate}")
        pcm = ctypes.string_at(data, samples_per_channel * bytes_per_sample * channels)
        with self.cloud.lock:
            self.cloud.pushes.append((time.monotonic(), len(pcm)))
            for handle, kind in self.kinds.items():
                track = self.objects[handle]
                if kind == "track" and track.sender == sender and not track.destroyed:
                    track.queue.extend(pcm)  # the track's (very large) send buffer
                    self.cloud.max_queued_bytes = max(self.cloud.max_queued_bytes, len(track.queue))
        return 0

    def c_agora_audio_pcm_data_sender_destroy(self, sender: int) -> None:
        if self._live(sender, "sender", "agora_audio_pcm_data_sender_destroy") is not None:
            self.released.add(sender)

    def c_agora_local_audio_track_clear_sender_buffer(self, track: int) -> int:
        obj = self._live(track, "track", "clear_sender_buffer")
        if obj is not None:
            obj.queue.clear()
        return 0

    def c_agora_local_audio_track_destroy(self, track: int) -> None:
        obj = self._live(track, "track", "agora_local_audio_track_destroy")
        if obj is not None:
            obj.destroyed = True
            self.released.add(track)

    def c_agora_service_get_agora_parameter(self, service: int) -> int:
        self._live(service, "service", "get_agora_parameter")
        return self.new_handle("parameter")

    # ------------------------------------------------------------------ connection
    def c_agora_rtc_conn_create(self, service: int, config: Any) -> int | None:
        state = self._live(service, "service", "agora_rtc_conn_create")
        if not state or not state["inited"]:
            return None
        handle = self.new_handle("connection")
        user = self.new_handle("local_user")
        conn = NativeConnection(self, handle, user, int(config.contents.auto_subscribe_audio))
        self.objects[handle] = self.objects[user] = conn
        return handle

    def _conn(self, handle: int, call: str) -> NativeConnection | None:
        return self._live(handle, "connection", call)

    def _user(self, handle: int, call: str) -> NativeConnection | None:
        return self._live(handle, "local_user", call)

    def c_agora_rtc_conn_get_local_user(self, conn: int) -> int | None:
        c = self._conn(conn, "agora_rtc_conn_get_local_user")
        return c.user_handle if c else None

    def c_agora_rtc_conn_get_agora_parameter(self, conn: int) -> int:
        self._conn(conn, "agora_rtc_conn_get_agora_parameter")
        return self.new_handle("parameter")

    def c_agora_rtc_conn_register_observer(self, conn: int, observer: Any) -> int:
        c = self._conn(conn, "agora_rtc_conn_register_observer")
        if c is None:
            return -1
        c.conn_observer = observer
        return 0

    def c_agora_rtc_conn_unregister_observer(self, conn: int) -> int:
        c = self._conn(conn, "agora_rtc_conn_unregister_observer")
        if c is not None:
            c.conn_observer = None
        return 0

    def c_agora_rtc_conn_connect(self, conn: int, token: bytes, chan: bytes, uid: bytes) -> int:
        c = self._conn(conn, "agora_rtc_conn_connect")
        return c.connect(token.decode(), chan.decode(), uid.decode()) if c else -1

    def c_agora_rtc_conn_disconnect(self, conn: int) -> int:
        c = self._conn(conn, "agora_rtc_conn_disconnect")
        return c.disconnect() if c else -1

    def c_agora_rtc_conn_renew_token(self, conn: int, token: bytes) -> int:
        c = self._conn(conn, "agora_rtc_conn_renew_token")
        return c.renew_token(token.decode()) if c else -1

    def c_agora_rtc_conn_destroy(self, conn: int) -> None:
        c = self._conn(conn, "agora_rtc_conn_destroy")
        if c is not None:
            c.stop()
            self.released.add(conn)

    def c_agora_rtc_conn_create_data_stream(self, conn: int, stream_id: Any, *flags: int) -> int:
        self._conn(conn, "agora_rtc_conn_create_data_stream")
        stream_id.contents.value = 1
        return 0

    # ------------------------------------------------------------------ local user
    def c_agora_local_user_set_playback_audio_frame_before_mixing_parameters(
        self, user: int, channels: int, rate: int
    ) -> int:
        c = self._user(user, "set_playback_audio_frame_before_mixing_parameters")
        if c is None:
            return -1
        c.frame_params = (channels, rate)
        return 0

    def c_agora_local_user_register_audio_frame_observer(self, user: int, observer: Any) -> int:
        c = self._user(user, "register_audio_frame_observer")
        if c is None:
            return -1
        c.audio_observer = observer
        return 0

    def c_agora_local_user_unregister_audio_frame_observer(self, user: int) -> int:
        c = self._user(user, "unregister_audio_frame_observer")
        if c is not None:
            c.audio_observer = None
        return 0

    def c_agora_local_user_register_observer(self, user: int, observer: Any) -> int:
        c = self._user(user, "agora_local_user_register_observer")
        if c is None:
            return -1
        c.user_observer = observer
        return 0

    def c_agora_local_user_unregister_observer(self, user: int) -> int:
        c = self._user(user, "agora_local_user_unregister_observer")
        if c is not None:
            c.user_observer = None
        return 0

    def c_agora_local_user_capabilities_observer_create(self, observer: Any) -> int:
        return self.new_handle("capabilities_observer", observer)

    def c_agora_local_user_capabilities_observer_destory(self, handle: int) -> None:
        if self._live(handle, "capabilities_observer", "capabilities_observer_destory"):
            self.released.add(handle)

    def c_agora_local_user_register_capabilities_observer(self, user: int, handle: int) -> int:
        c = self._user(user, "register_capabilities_observer")
        self._live(handle, "capabilities_observer", "register_capabilities_observer")
        if c is None:
            return -1
        c.capabilities_observer = handle
        return 0

    def c_agora_local_user_unregister_capabilities_observer(self, user: int, handle: int) -> int:
        c = self._user(user, "unregister_capabilities_observer")
        if c is not None:
            c.capabilities_observer = None
        return 0

    def c_agora_local_user_publish_audio(self, user: int, track: int) -> int:
        c = self._user(user, "agora_local_user_publish_audio")
        t = self._live(track, "track", "agora_local_user_publish_audio")
        if c is None or t is None:
            return -1
        c.published = t
        return 0

    def c_agora_local_user_unpublish_audio(self, user: int, track: int) -> int:
        c = self._user(user, "agora_local_user_unpublish_audio")
        t = self._live(track, "track", "agora_local_user_unpublish_audio")
        if c is None or t is None:
            return -1
        if c.published is t:
            c.published = None
        with self.cloud.lock:
            t.queue.clear()  # unpublishing drops what the track had not sent yet
        return 0
