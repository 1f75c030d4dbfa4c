"""``DailyTransport``: joins a Daily room with daily-python and reports it to the bridge.

What runs where:

* SDK callbacks (native threads) go through :class:`~.handler.DailyHandler`, which copies
  them onto the event loop; everything in this class runs on the loop, except
  :meth:`write_audio` (the pacer thread) and the audio renderer (Daily's audio thread).
* The bot's voice goes to an :mod:`~.audio_out` sink with blocking writes.
* Phone calls (dial-in forwarding, dial-out retries) live in :mod:`~.dialin`.

Lifecycle: ``join`` exactly once; ``leave`` is idempotent, waits (bounded) for Daily's leave
completion and then releases the client exactly once. A client whose leave cannot complete
(a join still in progress blocks both ``leave`` and ``release`` for up to ~20 s) is parked
until process exit instead of being released, and so is its custom audio source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from botrun.core.errors import TransportError, UsageError
from botrun.core.plugin_types import TransportContext
from botrun.core.secrets import register_secret
from botrun.core.transport import Transport, TransportEvents

from . import native_log, sdk
from .audio_out import AudioSink, make_sink
from .dialin import DialOut, PinlessForwarder, dialout_settings
from .messages import call_error_message, is_request_error, join_error_message
from .rest import DailyRest, room_name_from_url

log = logging.getLogger("botrun.daily")

INPUT_RATE = 16000  # participant audio requested from Daily's renderers
RENDER_INTERVAL_MS = 20
LEAVE_TIMEOUT_S = 1.5  # the bridge's whole shutdown budget is 1.8 s
TOKEN_MARGIN_S = 600.0

SUBSCRIPTION_PROFILE = {
    "base": {
        "camera": "unsubscribed",
        "microphone": "subscribed",
        "screenVideo": "unsubscribed",
        "screenAudio": "unsubscribed",
    }
}


@dataclass
class DailyOptions:
    """Validated options of one ``botrun daily`` run."""

    room: str
    room_name: str
    bot_name: str = "botrun"
    token: str | None = None
    api_key: str | None = None  # DAILY_API_KEY: mint a token, forward dial-in calls
    api_url: str | None = None  # DAILY_API_URL
    audio_out: str = "virtual-mic"
    dial_out: str | None = None
    dial_out_retries: int = 3
    join_timeout_s: float = 30.0
    dialin_call_id: str | None = None
    dialin_call_domain: str | None = None
    token_ttl_s: float = 3 * 3600.0 + TOKEN_MARGIN_S
    # Retry pacing (not user options; tests shorten them).
    rest_backoff_s: float = 0.5  # DailyRest's own retries on 429/5xx/network errors
    dialin_attempts: int = 2  # pinlessCallUpdate rounds, each with DailyRest's retries
    dialin_backoff_s: float = 1.0
    dialout_backoff_s: float = 2.0

    def __post_init__(self) -> None:
        register_secret(self.token)
        register_secret(self.api_key)
        if self.dial_out:
            dialout_settings(self.dial_out)  # UsageError for a malformed number
        if bool(self.dialin_call_id) != bool(self.dialin_call_domain):
            raise UsageError("dial-in needs both --dialin-call-id and --dialin-call-domain")
        if self.dialin_call_id and not self.api_key:
            raise UsageError(
                "DAILY_API_KEY is not set: it is needed to forward the dial-in call "
                "(pinlessCallUpdate)"
            )

    @classmethod
    def from_context(cls, ctx: TransportContext) -> DailyOptions:
        o = ctx.options
        room = str(o["room"]).strip()
        return cls(
            room=room,
            room_name=room_name_from_url(room),
            bot_name=ctx.bot_name,
            token=o.get("token") or None,
            api_key=ctx.secrets.get("DAILY_API_KEY"),
            api_url=ctx.secrets.env("DAILY_API_URL"),
            audio_out=o.get("audio_out") or "virtual-mic",
            dial_out=o.get("dial_out") or None,
            dial_out_retries=int(o.get("dial_out_retries", 3) or 0),
            join_timeout_s=float(o.get("join_timeout_s") or 30.0),
            dialin_call_id=o.get("dialin_call_id") or None,
            dialin_call_domain=o.get("dialin_call_domain") or None,
            token_ttl_s=ctx.config.bridge.max_duration_s + TOKEN_MARGIN_S,
        )

    @property
    def dialin(self) -> bool:
        return bool(self.dialin_call_id)


def client_settings(sink: AudioSink) -> dict[str, Any]:
    """Join settings: the bot's voice from ``sink``, camera off, mono publishing."""
    return {
        "inputs": {
            "camera": {"isEnabled": False},
            "microphone": sink.microphone_settings(),
        },
        "publishing": {
            "camera": {"isPublishing": False},
            "microphone": {
                "isPublishing": True,
                "sendSettings": {"channelConfig": "mono", "bitrate": 32000},
            },
        },
    }


def _participant_name(p: dict[str, Any]) -> str | None:
    info = p.get("info")
    if not isinstance(info, dict):
        return None
    name = info.get("userName")
    return str(name) if name else None


def _is_local(p: dict[str, Any]) -> bool:
    info = p.get("info")
    if not isinstance(info, dict):
        return False
    return bool(info.get("isLocal"))


class DailyTransport(Transport):
    """A Daily room as a botrun transport (see the module docstring for the threading)."""

    name = "daily"
    output_chunk_ms = 20
    output_max_ahead = 2

    def __init__(self, options: DailyOptions) -> None:
        self.options = options
        self.output_sample_rate = 16000
        self._events: TransportEvents | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._sink: AudioSink | None = None
        self._renderer: Any = None
        self._handler: Any = None
        self._bot_id: str | None = None
        self._joined = False
        self._join_done = True  # False while a join request has no completion yet
        self._leaving = False
        self._left = False
        self._released = False
        self._remote: dict[str, str | None] = {}  # remote participant id -> name
        self._gone: set[str] = set()
        self._rest: DailyRest | None = None
        self.forwarder: PinlessForwarder | None = None
        self.dialout: DialOut | None = None
        self.errors: list[str] = []
        self._capturing = False

    # ------------------------------------------------------------------ Transport API
    @property
    def bot_participant_id(self) -> str | None:
        return self._bot_id

    @property
    def remote_participants(self) -> dict[str, str | None]:
        return dict(self._remote)

    async def join(self, events: TransportEvents) -> None:
        # Daily's native core prints a JSON line to stderr for every failed request, even
        # with logging off: until leave() those lines go to botrun's log (native_log.py).
        if not self._capturing:
            native_log.capture()
            self._capturing = True
        self.prepare(events)
        token = await self._meeting_token()
        data = await self._join_call(token)
        self._joined = True
        self._bot_id = self._local_id(data) or self._bot_id
        log.info("joined %s as %s", self.options.room, self.options.bot_name)
        self._sdk_call("update_subscription_profiles", SUBSCRIPTION_PROFILE)
        for pid, p in self._client.participants().items():
            if pid != "local" and isinstance(p, dict):
                self.on_participant_joined(p)
        if self.options.dial_out:
            self.start_dial_out(self.options.dial_out)

    def start_dial_out(self, target: str) -> DialOut:
        """Dial ``target`` (+E.164 or sip:) from the room, retrying on errors (loop)."""
        self.dialout = DialOut(
            target,
            self._start_dialout,
            on_failure=self._fail,
            retries=self.options.dial_out_retries,
            backoff_s=self.options.dialout_backoff_s,
        )
        self.dialout.start()
        return self.dialout

    def prepare(self, events: TransportEvents) -> None:
        """Everything before the network join (on the running loop): SDK init, the voice
        sink, the event handler and the call client. :meth:`join` calls it; tests call it
        alone to drive the handler with SDK-shaped events."""
        if self._events is not None:
            raise TransportError("the Daily transport joins once; create a new one")
        self._events = events
        self._loop = loop = asyncio.get_running_loop()
        daily = sdk.ensure_init()
        from .handler import AudioRenderer, DailyHandler

        self._sink = make_sink(self.options.audio_out, self.output_sample_rate)
        self._renderer = AudioRenderer(events)
        self._handler = DailyHandler(loop, self)
        self._client = daily.CallClient(event_handler=self._handler)
        sdk.hold()
        self._bot_id = self._local_id()
        self._client.set_user_name(self.options.bot_name)
        if self.options.dialin:
            self.forwarder = PinlessForwarder(
                self.options.dialin_call_id or "",
                self.options.dialin_call_domain or "",
                self._pinless_update,
                on_failure=self._fail,
                attempts=self.options.dialin_attempts,
                backoff_s=self.options.dialin_backoff_s,
            )

    async def leave(self) -> None:
        if self._left:
            return
        self._left = self._leaving = True
        try:
            if self.dialout is not None:
                self.dialout.cancel()
            if self.forwarder is not None:
                await self.forwarder.aclose()
            await self._leave_and_release()
        finally:
            if self._rest is not None:
                rest, self._rest = self._rest, None
                with contextlib.suppress(Exception):
                    await rest.close()
            if self._capturing:
                self._capturing = False
                native_log.release()

    def write_audio(self, pcm: bytes) -> None:
        sink = self._sink
        if sink is not None:
            sink.write(pcm)

    # ------------------------------------------------------------------ join helpers
    async def _meeting_token(self) -> str | None:
        o = self.options
        if o.token or not o.api_key:
            return o.token
        rest = self._rest_client()
        try:
            token = await rest.create_meeting_token(
                o.room_name, owner=True, exp_s=o.token_ttl_s, user_name=o.bot_name
            )
        except TransportError as exc:
            raise TransportError(
                f"could not get a meeting token for room {o.room_name!r}: {exc}"
            ) from None
        register_secret(token)
        log.info("minted an owner meeting token for room %s", o.room_name)
        return token

    async def _join_call(self, token: str | None) -> dict[str, Any]:
        loop = self._loop
        assert loop is not None and self._sink is not None
        fut: asyncio.Future[tuple[Any, Any]] = loop.create_future()

        def done(data: Any, error: Any) -> None:  # native thread
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fut, (data, error))

        self._join_done = False
        self._client.join(self.options.room, token, client_settings(self._sink), completion=done)
        timeout = self.options.join_timeout_s
        try:
            data, error = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise TransportError(
                f"timed out after {timeout:g} s joining {self.options.room} (is the network "
                "up and the room reachable? raise --join-timeout-s to wait longer)"
            ) from None
        self._join_done = True
        if error:
            raise TransportError(join_error_message(error, self.options.room))
        return data if isinstance(data, dict) else {}

    def _local_id(self, data: Any = None) -> str | None:
        parts = data.get("participants") if isinstance(data, dict) else None
        if not isinstance(parts, dict):
            try:
                parts = self._client.participants()
            except Exception:  # a missing id only weakens self-filtering
                return None
        local = parts.get("local") if isinstance(parts, dict) else None
        pid = local.get("id") if isinstance(local, dict) else None
        return str(pid) if pid else None

    def _sdk_call(self, method: str, *args: Any) -> None:
        """Call a client method whose completion only needs logging (loop thread)."""

        def done(*result: Any) -> None:  # native thread: only log
            error = result[-1] if result else None
            if error:
                log.warning("Daily %s failed: %s", method, error)

        getattr(self._client, method)(*args, completion=done)

    # ------------------------------------------------------------------ leave helpers
    async def _leave_and_release(self) -> None:
        client = self._client
        if client is None or self._released:
            self._close_sink(park=False)
            return
        if not self._join_done:
            # leave/release would block until Daily gives up joining (~20 s offline).
            with contextlib.suppress(Exception):
                client.leave()
            self._park_client()
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def done(error: Any = None) -> None:  # native thread
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fut, error)

        try:
            client.leave(completion=done)
            error = await asyncio.wait_for(asyncio.shield(fut), LEAVE_TIMEOUT_S)
        except TimeoutError:
            log.warning("Daily did not confirm leaving in time; the client is released at exit")
            self._park_client()
            return
        except asyncio.CancelledError:
            self._park_client()
            raise
        if error:
            log.warning("leaving the Daily room: %s", error)
        self._release_client()

    def _release_client(self) -> None:
        if self._released:
            return
        self._released = True
        client, self._client = self._client, None
        try:
            client.release()
        except Exception as exc:  # nothing left to do but say so
            log.warning("releasing the Daily client failed: %s", exc)
        finally:
            sdk.drop()
        self._close_sink(park=False)

    def _park_client(self) -> None:
        if self._released:
            return
        self._released = True
        client, self._client = self._client, None
        sdk.keep_forever(client)
        sdk.drop()
        self._close_sink(park=True)

    def _close_sink(self, park: bool) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        if park:  # the parked client may still use the track: keep its source too
            sink.park()
        else:
            sink.close(timeout=0.2)

    # ------------------------------------------------------------------ handler events
    # All of these run on the event loop (DailyHandler hands them over).
    def on_participant_joined(self, participant: dict[str, Any]) -> None:
        pid = str(participant.get("id") or "")
        if not pid or _is_local(participant) or pid == self._bot_id or pid in self._remote:
            return
        name = _participant_name(participant)
        self._remote[pid] = name
        self._gone.discard(pid)
        if self._events is not None:
            self._events.participant_joined(pid, name)
        if self._client is not None and not self._leaving:
            self._client.set_audio_renderer(
                pid,
                self._renderer,
                audio_source="microphone",
                sample_rate=INPUT_RATE,
                callback_interval_ms=RENDER_INTERVAL_MS,
            )

    def on_participant_updated(self, participant: dict[str, Any]) -> None:
        pid = str(participant.get("id") or "")
        if not pid or _is_local(participant) or pid == self._bot_id:
            return
        if pid not in self._remote:  # missed its join (e.g. it joined while we joined)
            self.on_participant_joined(participant)
            return
        name = _participant_name(participant)
        if name != self._remote[pid] and self._events is not None:
            self._remote[pid] = name
            self._events.participant_updated(pid, name)

    def on_participant_left(self, participant: dict[str, Any], reason: str) -> None:
        pid = str(participant.get("id") or "")
        if pid not in self._remote:
            return
        del self._remote[pid]
        self._gone.add(pid)
        if self._events is not None:
            self._events.participant_left(pid, reason)
        if self.options.dialin and not self._remote and not self._leaving:
            self._end("the caller hung up")

    def on_call_state(self, state: str) -> None:
        log.debug("Daily call state: %s", state)
        if state == "left" and self._joined and not self._leaving:
            detail = self.errors[-1] if self.errors else "removed from the room or disconnected"
            self._end("left", f"the bot is no longer in the Daily room: {detail}")

    def on_error(self, message: str) -> None:
        self.errors.append(message)
        if not self._joined or self._leaving:
            log.debug("Daily error (not in a call): %s", message)
            return
        if is_request_error(message) or any(pid in message for pid in self._gone):
            # One request failed (its completion, where it has one, deals with it), or a
            # participant left under it: the call itself goes on.
            log.warning("Daily: %s", message)
            return
        self._end("error", call_error_message(message))

    def on_dialin_ready(self, sip_endpoint: str) -> None:
        if self.forwarder is None:
            log.info("dial-in ready (%s) but this bot has no call to forward", sip_endpoint)
            return
        self.forwarder.on_ready(sip_endpoint)

    def on_dialin_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "connected":
            log.info("phone caller connected (%s)", data.get("sipFrom") or "unknown number")
        elif kind == "stopped":
            self._end("the caller hung up")
        elif kind == "error":
            self._fail(f"dial-in failed: {data.get('errorMsg') or data}")
        else:
            log.warning("dial-in %s: %s", kind, data)

    def on_dialout_event(self, kind: str, data: dict[str, Any]) -> None:
        if self.dialout is not None:
            self.dialout.on_event(kind, data)

    # ------------------------------------------------------------------ phone helpers
    def _rest_client(self) -> DailyRest:
        if self._rest is None:
            self._rest = DailyRest(
                self.options.api_key or "",
                base_url=self.options.api_url,
                backoff=self.options.rest_backoff_s,
            )
        return self._rest

    async def _pinless_update(self, call_id: str, call_domain: str, sip_uri: str) -> None:
        await self._rest_client().pinless_call_update(call_id, call_domain, sip_uri)

    def _start_dialout(self, settings: dict[str, str], done: Any) -> None:
        loop = self._loop
        if self._client is None or loop is None or self._leaving:
            return

        def completion(session_id: Any = None, error: Any = None) -> None:  # native thread
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(done, str(error) if error else None)

        self._client.start_dialout(settings, completion=completion)

    # ------------------------------------------------------------------ endings
    def _end(self, reason: str, error: str | None = None) -> None:
        if error:
            log.error("%s", error)
        if self._events is not None:
            self._events.ended(reason, error=error)

    def _fail(self, message: str) -> None:
        self._end("error", message)


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)
