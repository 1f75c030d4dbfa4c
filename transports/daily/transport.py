"""``DailyTransport``: joins a Daily room with daily-python and reports it to the bridge.

What runs where:

* SDK callbacks (native threads) go through :class:`~.handler.DailyHandler`. Participant
  events are reported to the bridge on the SDK's thread (the ``report_*`` methods, under
  ``_roster_lock``), like their audio, which the renderer hands over on Daily's audio
  thread: both reach the bridge through its one hand-off, in the order Daily gave them, one
  loop pass. Everything else the handler copies onto the event loop; everything in this
  class runs on the loop, except those, :meth:`write_audio` (the pacer thread) and
  :attr:`remote_participants` (any thread).
* The bot's voice goes to an :mod:`~.audio_out` sink with blocking writes.
* Phone calls (dial-in forwarding, dial-out retries) live in :mod:`~.dialin`; the phone
  legs in the room and the settings of the call actions (hang up, transfer, DTMF, dial-out)
  in :mod:`~.phone`. Each action awaits its SDK completion on the loop, with a timeout.

Lifecycle: ``join`` exactly once; ``leave`` is idempotent, waits (bounded) for Daily's leave
completion and then releases the client exactly once. A client whose leave cannot complete
(a join still in progress blocks both ``leave`` and ``release`` for up to ~20 s) is parked
until process exit instead of being released, and so is its custom audio source.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botrun.core.errors import CallActionError, TransportError, UsageError
from botrun.core.plugin_types import TransportContext
from botrun.core.secrets import register_secret
from botrun.core.transport import Transport, TransportEvents

from . import native_log, sdk
from .audio_out import AudioSink, make_sink
from .dialin import DialOut, PinlessForwarder, dialout_settings
from .messages import call_error_message, is_request_error, join_error_message, short_error
from .phone import (
    Kind,
    PhoneLeg,
    PhoneLegs,
    caller_number,
    dtmf_settings,
    dtmf_tones,
    is_phone_number,
    session_id_of,
    transfer_method,
    transfer_settings,
)
from .rest import DailyRest, room_name_from_url

log = logging.getLogger("botrun.daily")

INPUT_RATE = 16000  # participant audio requested from Daily's renderers
RENDER_INTERVAL_MS = 20
LEAVE_TIMEOUT_S = 1.5  # the bridge's whole shutdown budget is 1.8 s
TOKEN_MARGIN_S = 600.0
ACTION_TIMEOUT_S = 10.0  # a call action's SDK completion (transfer, DTMF, dial-out, ...)
STOP_DIALOUT_TIMEOUT_S = 0.5  # while leaving: part of the bridge's shutdown budget

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
        # Kept on the SDK's thread (and the loop's, at join) under _roster_lock:
        self._roster_lock = threading.RLock()
        self._remote: dict[str, str | None] = {}  # remote participant id -> name
        self._gone: set[str] = set()
        self._rest: DailyRest | None = None
        self.forwarder: PinlessForwarder | None = None
        self.dialout: DialOut | None = None
        self.errors: list[str] = []
        self._capturing = False
        #: SIP/PSTN legs in the room (dial-in callers, numbers dialed), by session id.
        self.legs = PhoneLegs()
        # Dial-outs Daily accepted whose leg has not connected yet (oldest first): the number
        # and whether a call action (not --dial-out) dialed it.
        self._dialing: list[tuple[str, bool]] = []
        self._interrupted: set[str] = set()  # network connections reported interrupted
        self.dtmf_rejected = 0  # keypad events with something other than 0-9*#A-D
        self.action_timeout_s = ACTION_TIMEOUT_S  # tests shorten it
        self._hanging_up = False

    # ------------------------------------------------------------------ Transport API
    @property
    def bot_participant_id(self) -> str | None:
        return self._bot_id

    @property
    def remote_participants(self) -> dict[str, str | None]:
        with self._roster_lock:
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
                follow_up = self.report_joined(p)
                if follow_up is not None:
                    follow_up()
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
            await self._stop_dialouts()
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

    # ------------------------------------------------------------------ participants
    # report_* run on the SDK's thread (DailyHandler) and, for those already in the room at
    # join, on the loop: they decide under _roster_lock whether the event is news and report
    # it to the bridge at once (TransportEvents is thread-safe); what the transport does
    # about it (SDK calls, phone legs, the caller hanging up) is returned, to run on the loop.
    def report_joined(self, participant: dict[str, Any]) -> Callable[[], None] | None:
        pid = str(participant.get("id") or "")
        if not pid or _is_local(participant) or pid == self._bot_id:
            return None
        name = _participant_name(participant)
        with self._roster_lock:
            if pid in self._remote:
                return None
            self._remote[pid] = name
            self._gone.discard(pid)
            if self._events is not None:
                self._events.participant_joined(pid, name)
        return functools.partial(self._joined_on_loop, pid)

    def report_updated(self, participant: dict[str, Any]) -> Callable[[], None] | None:
        pid = str(participant.get("id") or "")
        if not pid or _is_local(participant) or pid == self._bot_id:
            return None
        with self._roster_lock:
            if pid not in self._remote:  # missed its join (e.g. it joined while we joined)
                return self.report_joined(participant)
            name = _participant_name(participant)
            if name != self._remote[pid] and self._events is not None:
                self._remote[pid] = name
                self._events.participant_updated(pid, name)
        return None

    def report_left(self, participant: dict[str, Any], reason: str) -> Callable[[], None] | None:
        pid = str(participant.get("id") or "")
        with self._roster_lock:
            known = pid in self._remote
            if known:
                del self._remote[pid]
                self._gone.add(pid)
                if self._events is not None:
                    self._events.participant_left(pid, reason)
            empty = not self._remote
        return functools.partial(self._left_on_loop, pid, known and empty)

    def _joined_on_loop(self, pid: str) -> None:
        leg = self.legs.get(pid)
        if leg is not None and leg.number is None:  # the leg's number from its display name
            self._phone_leg(pid, leg.kind, None)
        with self._roster_lock:
            present = pid in self._remote  # not when it left meanwhile
        if present and self._client is not None and not self._leaving:
            self._client.set_audio_renderer(
                pid,
                self._renderer,
                audio_source="microphone",
                sample_rate=INPUT_RATE,
                callback_interval_ms=RENDER_INTERVAL_MS,
            )

    def _left_on_loop(self, pid: str, last_one: bool) -> None:
        """``last_one``: the room had no remote participant left after this one."""
        self.legs.remove(pid)
        if self.options.dialin and last_one and not self._leaving:
            self._caller_hung_up()

    # ------------------------------------------------------------------ handler events
    # All of these run on the event loop (DailyHandler hands them over).
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
        with self._roster_lock:
            gone = tuple(self._gone)
        if is_request_error(message) or any(pid in message for pid in gone):
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
            sid = session_id_of(data)
            if sid:
                self._phone_leg(sid, "dialin", caller_number(data.get("sipFrom")))
        elif kind == "stopped":
            self.legs.remove(session_id_of(data))
            self._caller_hung_up()
        elif kind == "error":
            self._fail(f"dial-in failed: {data.get('errorMsg') or data}")
        else:
            log.warning("dial-in %s: %s", kind, data)

    def on_dialout_event(self, kind: str, data: dict[str, Any]) -> None:
        sid = session_id_of(data)
        leg = self.legs.get(sid) if sid else None
        if kind in ("connected", "answered") and sid:
            number, by_action = (leg.number, leg.by_action) if leg is not None else (None, False)
            if leg is None and self._dialing:
                number, by_action = self._dialing.pop(0)
            leg = self._phone_leg(sid, "dialout", number)
            leg.by_action = by_action
            leg.answered = leg.answered or kind == "answered"
        elif kind in ("stopped", "error"):
            self.legs.remove(sid)
        by_action = leg.by_action if leg is not None else self.dialout is None
        if not by_action and self.dialout is not None:
            self.dialout.on_event(kind, data)  # --dial-out: retried, its failure ends the call
        elif kind == "error":  # a call action's dial-out: the bot goes on, the user is told
            what = (leg.number if leg is not None else None) or sid or "a number"
            error = short_error(data.get("errorMsg") or data)
            log.warning("dial-out to %s failed: %s", what, error)
            if self._events is not None:
                self._events.status("dial-out failed", f"{what}: {error}")
        elif kind == "stopped":
            log.info("dial-out call %s ended", sid or "")

    def on_dtmf(self, data: dict[str, Any]) -> None:
        pid, tones, rest = dtmf_tones(data)
        if rest or not tones:
            self.dtmf_rejected += 1
            log.warning("Daily keypad event without a valid tone ignored: %r", data.get("tone"))
        if self._events is not None:
            for tone in tones:
                self._events.dtmf(pid, tone)

    def on_network_status(self, status: dict[str, Any]) -> None:
        """``on_network_connection_status_updated``: ``connected`` on join and after each
        reconnection, ``interrupted`` when lost. Shown as reconnecting / reconnected."""
        event = str(status.get("event") or status.get("state") or "").lower()
        conn = str(status.get("connection") or status.get("type") or "network")
        log.debug("Daily network connection %s: %s", conn, event)
        if self._events is None or self._leaving:
            return
        if event in ("interrupted", "disconnected", "reconnecting"):
            if conn not in self._interrupted:
                self._interrupted.add(conn)
                self._events.status("reconnecting", f"Daily {conn} connection interrupted")
        elif event == "connected" and conn in self._interrupted:
            self._interrupted.discard(conn)
            self._events.status("reconnected", f"Daily {conn} connection restored")

    def _phone_leg(self, session_id: str, kind: Kind, number: str | None) -> PhoneLeg:
        if number is None:  # Daily names a SIP participant by the room's sip.display_name,
            with self._roster_lock:  # which botrun serve sets to the caller's number
                name = self._remote.get(session_id)
            number = name if name and is_phone_number(name) else None
        leg, changed = self.legs.add(session_id, kind, number)
        if changed and self._events is not None:
            self._events.participant_phone(session_id, leg.number)
        return leg

    # ------------------------------------------------------------------ call actions
    async def hang_up(self, reason: str) -> None:
        """End every SIP/PSTN leg in the room: ``stop_dialout`` for numbers the bot dialed,
        ``eject_remote_participants`` for dial-in callers (leaving alone would keep them on
        the line in an empty room). The bridge then leaves."""
        legs = self.legs.all()
        if not legs or self._client is None:
            return
        self._hanging_up = True  # the legs ending now are not "the caller hung up"
        log.info("hanging up %d phone leg(s): %s", len(legs), reason)
        errors = []
        for leg in legs:
            try:
                if leg.kind == "dialout":
                    await self._request("stop_dialout", leg.session_id, what="end the dial-out")
                else:
                    await self._request(
                        "eject_remote_participants", [leg.session_id], what="end the phone call"
                    )
            except CallActionError as exc:
                errors.append(str(exc))
            else:
                self.legs.remove(leg.session_id)
        if errors:
            raise CallActionError("; ".join(errors))

    async def transfer(self, target: str, participant_id: str | None = None) -> None:
        leg = self.legs.pick(participant_id, "dialin", "transfer the call")
        settings = transfer_settings(leg, target)
        method = transfer_method(leg, settings["toEndPoint"])
        log.info("transferring phone caller %s to %s (%s)", leg.session_id, target, method)
        await self._request(method, settings, what=f"transfer the call to {target}")

    async def send_dtmf(self, digits: str, participant_id: str | None = None) -> None:
        leg = self.legs.pick(participant_id, "dialout", "send DTMF tones")
        for settings in dtmf_settings(leg, digits):
            await self._request("send_dtmf", settings, what="send DTMF tones")

    async def dial_out(self, number: str) -> str:
        try:
            settings = dialout_settings(number)
        except UsageError as exc:
            raise CallActionError(str(exc).replace("--dial-out ", "cannot dial ", 1)) from None
        target = settings.get("phoneNumber") or settings.get("sipUri") or number
        result = await self._request("start_dialout", settings, what=f"dial {target}")
        sid = session_id_of(result)
        if not sid:
            self._dialing.append((target, True))
            return target  # the leg's id arrives with on_dialout_connected
        self._phone_leg(sid, "dialout", target).by_action = True
        return sid

    async def _request(
        self,
        method: str,
        *args: Any,
        what: str,
        timeout: float | None = None,
        leaving: bool = False,
    ) -> Any:
        """Call ``client.<method>(*args, completion=...)`` and await the completion on the
        loop: its error becomes a :class:`CallActionError` with the SDK's message; a
        completion with two values returns the first (``start_dialout``'s session)."""
        loop = self._loop
        client = self._client
        if client is None or loop is None or (self._leaving and not leaving):
            raise CallActionError(f"cannot {what}: the bot is not in the Daily room")
        fut: asyncio.Future[tuple[Any, ...]] = loop.create_future()

        def done(*result: Any) -> None:  # native thread: copy, hand off, return
            try:
                values = tuple(copy.deepcopy(result))
            except Exception:  # an SDK object that cannot be copied: its text will do
                values = tuple(None if r is None else str(r) for r in result)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fut, values)

        try:
            getattr(client, method)(*args, completion=done)
        except Exception as exc:  # a refused argument raises at once
            raise CallActionError(f"could not {what}: {short_error(exc)}") from None
        timeout = self.action_timeout_s if timeout is None else timeout
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise CallActionError(
                f"could not {what}: Daily did not answer within {timeout:g} s"
            ) from None
        error = result[-1] if result else None
        if error:
            raise CallActionError(f"could not {what}: Daily said {short_error(error)}")
        return result[0] if len(result) > 1 else None

    async def _stop_dialouts(self) -> None:
        """Leaving: hang up every number the bot dialed (Daily keeps a dial-out leg up
        after the bot leaves otherwise). Errors are logged; the leave goes on."""
        legs = self.legs.of_kind("dialout")
        if not legs or self._client is None or not self._join_done:
            return

        async def stop(leg: PhoneLeg) -> None:
            try:
                await self._request(
                    "stop_dialout",
                    leg.session_id,
                    what=f"end the dial-out leg {leg.session_id}",
                    timeout=STOP_DIALOUT_TIMEOUT_S,
                    leaving=True,
                )
            except CallActionError as exc:
                log.warning("%s", exc)
            else:
                self.legs.remove(leg.session_id)
                log.info("ended the dial-out leg %s", leg.session_id)

        await asyncio.gather(*(stop(leg) for leg in legs))

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
            sid = session_id_of(session_id)  # copied out: a str, never the SDK's object
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(
                    self._dialout_started, settings, sid, str(error) if error else None, done
                )

        self._client.start_dialout(settings, completion=completion)

    def _dialout_started(
        self, settings: dict[str, str], sid: str | None, error: str | None, done: Any
    ) -> None:
        if not error:
            target = settings.get("phoneNumber") or settings.get("sipUri") or ""
            if sid:
                self._phone_leg(sid, "dialout", target)
            else:  # the leg's id comes with on_dialout_connected
                self._dialing.append((target, False))
        done(error)

    # ------------------------------------------------------------------ endings
    def _end(self, reason: str, error: str | None = None) -> None:
        if error:
            log.error("%s", error)
        if self._events is not None:
            self._events.ended(reason, error=error)

    def _fail(self, message: str) -> None:
        self._end("error", message)

    def _caller_hung_up(self) -> None:
        if not self._hanging_up:  # after the bot's own hang-up the bridge ends the call
            self._end("the caller hung up")


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)
