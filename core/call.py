"""The call as the bot sees it: one :class:`CallContext` per call.

Tools that ask for it (a parameter annotated ``CallContext``) and per-call hooks
(core/hooks.py) get the same object: who is in the call, the transcript so far, a ``state``
dict for the bot's own per-call data, and the actions the bot can take::

    await call.say("One moment, I'll put you through.")   # the agent speaks it
    await call.reply("Ask the caller for their order number.")
    await call.update(prompt="...", turn_detection={"min_silence": 600})
    await call.transfer("sales")        # a declared [[transfer]] target, by name
    await call.send_dtmf("1#")          # keypad tones (0-9 * # A-D)
    await call.dial_out("+14155550123")
    await call.hang_up()                # after the reply in flight has played out

An action the transport cannot perform raises :class:`~botrun.core.errors.ActionUnsupported`;
a refused argument (digits, an undeclared target) :class:`~botrun.core.errors.CallActionError`.
Inside a tool either becomes the tool's error result, which the agent hears about. After the
call ended every action is a no-op with a log line. Each action is reported as a
:class:`~botrun.core.events.CallAction` event and listed in the call summary (refused ones
too). A sync hook or tool calls the same actions without ``await``: they are handed to the
call's loop and have run when they return (core/action.py)::

    def on_dtmf(call, digit, p):         # a sync hook, in a thread of its own
        call.say(f"You pressed {digit}.")

The context is also an observer of the bridge's events: it keeps the transcript, dispatches
the hooks and runs the idle check-in (``[bot] idle_reminder_s`` / ``idle_hangup_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from . import events as ev
from .action import call_action
from .config import PHONE_NUMBER, SIP_URI
from .errors import BotrunError, CallActionError
from .instructions import say_instructions
from .keypad import KeySequence, keypad_message
from .participants import Participant

if TYPE_CHECKING:
    from .bridge import Bridge, CallSummary
    from .hooks import CallHooks

log = logging.getLogger("botrun.call")

#: Keypad tones a call can carry.
DTMF_DIGITS = frozenset("0123456789*#ABCD")
MAX_DTMF_DIGITS = 64
#: The most a hang-up (or transfer) waits for the agent's reply in flight to play out.
PLAY_OUT_WAIT_S = 5.0
#: How long a reply asked for with say()/reply() counts as coming.
ASKED_REPLY_WAIT_S = 15.0
_POLL_S = 0.05
_IDLE_TICK_S = 0.2
_SIGNAL_HOOK_S = 0.2  # on_call_end after Ctrl-C / SIGTERM: the exit budget is 2 s

T = TypeVar("T")


def check_digits(digits: str) -> str:
    """``digits`` upper-cased if every one is a keypad tone (``0-9 * # A-D``), else
    :class:`CallActionError` naming what is wrong."""
    if not isinstance(digits, str) or not digits:
        raise CallActionError("no DTMF digits given (expected some of 0-9 * # A B C D)")
    if len(digits) > MAX_DTMF_DIGITS:
        raise CallActionError(f"too many DTMF digits ({len(digits)}; at most {MAX_DTMF_DIGITS})")
    norm = digits.upper()
    bad = sorted({c for c in norm if c not in DTMF_DIGITS})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise CallActionError(f"not DTMF digits: {shown} (allowed: 0-9 * # A B C D)")
    return norm


def check_number(number: str) -> str:
    """A dial-out/transfer destination: an E.164 number or a SIP URI."""
    if not isinstance(number, str) or not (PHONE_NUMBER.match(number) or SIP_URI.match(number)):
        raise CallActionError(
            "expected an E.164 number ('+14155550123') or a SIP URI ('sip:user@host')"
        )
    return number


@dataclass(frozen=True)
class TranscriptLine:
    """One final utterance: ``role`` is ``user`` or ``agent``."""

    role: str
    text: str
    participant_id: str | None = None
    participant_name: str | None = None
    interrupted: bool = False
    time: float = field(default_factory=time.time)


class CallContext:
    """One call, for the bot's tools and hooks. Made by the bridge; use it on the event loop
    (async tools and hooks: ``await call.say(...)``). A sync tool or hook runs in a thread
    of its own; its actions are handed to the loop and have run when they return
    (``call.say(...)``; core/action.py)."""

    def __init__(self, bridge: Bridge, hooks: CallHooks | None = None) -> None:
        self._bridge = bridge
        self._hooks = hooks
        #: An id for this call (logs, your own records).
        self.call_id = f"call_{uuid.uuid4().hex[:16]}"
        #: The transport's name (``daily``, ``agora``, ``wav``, ...).
        self.transport: str = bridge.transport.name
        #: Your own per-call data; botrun never reads it.
        self.state: dict[str, Any] = {}
        self._transcript: list[TranscriptLine] = []
        self._known: dict[str, Participant] = {}  # everyone seen, left ones included
        self._ended = False
        self._replies_done = 0  # ReplyDone events seen
        self._asked_until = 0  # a reply asked for is over once _replies_done reaches this
        self._asked_at = 0.0  # when the last one was asked for (an agent may never answer)
        self._last_user = time.monotonic()  # idle clock
        self._idle_stage = 0  # 0: none yet, 1: reminded, 2: hung up
        self._user_activity = 0  # caller speech/keys seen (an idle goodbye checks it)
        self._idle_task: asyncio.Task[None] | None = None
        self._hanging_up: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        bot = bridge.config.bot
        # [bot] dtmf = "forward": key sequences the on_dtmf hook did not keep go to the agent
        self._keys = (
            KeySequence(bot.dtmf_gap_s, self._forward_keys) if bot.dtmf == "forward" else None
        )
        self._loop: asyncio.AbstractEventLoop | None = None  # the call's (actions run on it)
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()

    def _action_loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    # ------------------------------------------------------------------ what the call is
    @property
    def participants(self) -> list[Participant]:
        """The people in the call now (the bot excluded): ``id``, ``name``, ``phone`` (a
        phone caller) and ``number`` (the caller's number, when known)."""
        return self._bridge.roster.people

    def participant(self, participant_id: str | None) -> Participant | None:
        """A participant by id, including one who has left."""
        if participant_id is None:
            return None
        return self._bridge.roster.get(participant_id) or self._known.get(participant_id)

    @property
    def caller(self) -> Participant | None:
        """The (first) phone caller in the call, if any."""
        return next((p for p in self.participants if p.phone), None)

    @property
    def transcript(self) -> list[TranscriptLine]:
        """The final utterances so far, in order."""
        return list(self._transcript)

    @property
    def ended(self) -> bool:
        """The call is over (or ending): actions are no-ops."""
        return self._ended or self._bridge.stopping

    @property
    def idle_step(self) -> str | None:
        """The idle step reached since the caller was last heard: ``"check-in"``,
        ``"hang-up"``, or None (none yet). In ``on_idle`` it names the step being run."""
        return {1: "check-in", 2: "hang-up"}.get(self._idle_stage)

    @property
    def transfer_targets(self) -> dict[str, str]:
        """The declared ``[[transfer]]`` targets: name -> destination."""
        return {t.name: t.to for t in self._bridge.config.transfer}

    # ------------------------------------------------------------------ actions
    def _skip(self, action: str) -> bool:
        if self.ended:
            log.info("call %s: %s ignored, the call has ended", self.call_id, action)
            return True
        return False

    @contextlib.contextmanager
    def _refusing(self, action: str, detail: Any) -> Iterator[None]:
        """A :class:`CallActionError` raised inside (a refused argument) is recorded as the
        action, with the error, before it propagates: refused actions are listed too."""
        try:
            yield
        except CallActionError as exc:
            self._record(action, str(detail)[:200], str(exc))
            raise

    def _record(self, action: str, detail: str = "", error: str | None = None) -> None:
        from .secrets import redact

        event = ev.CallAction(action, redact(detail), redact(error) if error else None)
        self._bridge.summary.actions.append(event)
        self._bridge._emit(event)

    async def _act(self, action: str, detail: str, run: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await run()
        except BotrunError as exc:
            self._record(action, detail, str(exc))
            if isinstance(exc, CallActionError):
                raise
            raise CallActionError(f"{action} failed: {exc}") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a transport's own failure: the bot hears about it
            self._record(action, detail, f"{type(exc).__name__}: {exc}")
            raise CallActionError(f"{action} failed: {type(exc).__name__}: {exc}") from None
        self._record(action, detail)
        return result

    def _session(self, method: str, action: str) -> Any:
        """The agent session's ``method`` (``request_reply``, ``update_session``)."""
        client = self._bridge.client
        if client is None:
            raise CallActionError(f"cannot {action}: no agent session is open (nobody in the call)")
        fn = getattr(client, method, None)
        if not callable(fn):
            backend = self._bridge.config.agent.backend
            raise CallActionError(f"the {backend} agent backend cannot {action}")
        return fn

    @call_action()
    async def say(self, text: str) -> None:
        """The agent says ``text`` (as closely as the agent follows instructions; the
        simulator says it verbatim), after any reply under way."""
        with self._refusing("say", text):
            if not isinstance(text, str) or not text.strip():
                raise CallActionError("say() needs some text")
        if self._skip("say"):
            return

        async def run() -> None:
            await self._session("request_reply", "speak on request")(say_instructions(text))
            self._asked()

        await self._act("say", text[:200], run)

    @call_action()
    async def reply(self, instructions: str | None = None) -> None:
        """Ask the agent to reply now, optionally with one-off ``instructions``."""
        if self._skip("reply"):
            return

        async def run() -> None:
            await self._session("request_reply", "reply on request")(instructions or None)
            self._asked()

        await self._act("reply", (instructions or "")[:200], run)

    def _asked(self) -> None:
        busy = 1 if self._bridge._replying() else 0
        self._asked_until = max(self._asked_until, self._replies_done + busy) + 1
        self._asked_at = time.monotonic()

    def _awaiting_asked_reply(self) -> bool:
        """A reply asked for (say/reply) has not finished yet -- for a while at most: an
        agent that refused or dropped the request must not keep the call 'busy' for ever."""
        return (
            self._replies_done < self._asked_until
            and time.monotonic() - self._asked_at < ASKED_REPLY_WAIT_S
        )

    @call_action()
    async def update(
        self,
        prompt: str | None = None,
        *,
        tools: list[str] | None = None,
        turn_detection: dict[str, Any] | None = None,
        **changes: Any,
    ) -> None:
        """Change the agent session mid-call: the system ``prompt``, the ``tools`` offered
        (names of this bot's tools), ``turn_detection`` settings, or any other mutable
        ``session`` field as a keyword (kept across reconnects)."""
        if self._skip("update"):
            return
        payload: dict[str, Any] = dict(changes)
        if prompt is not None:
            payload["system_prompt"] = prompt
        if turn_detection is not None:
            payload["input"] = {**payload.get("input", {}), "turn_detection": turn_detection}
        asked = set(payload) | ({"tools"} if tools is not None else set())
        with self._refusing("update", ", ".join(sorted(asked))):
            if tools is not None:
                from .protocol import tool_payload

                registry = self._bridge.tools
                unknown = [n for n in tools if registry is None or n not in registry]
                if unknown:
                    known = ", ".join(registry.names) if registry is not None else "none"
                    raise CallActionError(f"unknown tools {unknown} (this bot has: {known})")
                assert registry is not None
                payload["tools"] = [tool_payload(spec) for n in tools if (spec := registry.get(n))]
            if not payload:
                raise CallActionError("update() was given nothing to change")

        async def run() -> None:
            await self._session("update_session", "update the session")(payload)

        await self._act("update", ", ".join(sorted(payload)), run)

    @call_action()
    async def hang_up(self, reason: str = "hang_up") -> None:
        """End the call: the agent's reply in flight (or one just asked for with
        :meth:`say`) plays out first, for at most a few seconds; then the transport hangs
        up and the bot leaves. The call summary's reason is ``reason``."""
        if self._skip("hang_up"):
            return
        self._ended = True  # from here on, other actions are no-ops
        # A task of its own: a tool cut off by its timeout (or cancelled) while waiting for
        # the play-out does not leave the call half hung up.
        self._hanging_up = asyncio.create_task(self._hang_up(reason), name="hang_up")
        await asyncio.shield(self._hanging_up)

    async def _hang_up(self, reason: str) -> None:
        try:
            await self._play_out(mute=True)
            transport = self._bridge.transport
            await self._act("hang_up", reason, lambda: transport.hang_up(reason))
        except CallActionError as exc:
            log.warning("call %s: the transport's hang-up failed (%s); leaving", self.call_id, exc)
        finally:
            self._bridge.stop(reason)

    @call_action()
    async def transfer(self, target: str, participant_id: str | None = None) -> None:
        """Hand the phone caller (or ``participant_id``) to a declared ``[[transfer]]``
        target, by its name; what the agent was saying plays out first."""
        targets = self.transfer_targets
        to = targets.get(target)
        if to is None and target in targets.values():
            to = target  # a declared destination itself
        if to is None:
            declared = ", ".join(targets) or "none are declared in [[transfer]]"
            with self._refusing("transfer", target):
                raise CallActionError(f"unknown transfer target {target!r} (declared: {declared})")
        if self._skip("transfer"):
            return
        transport = self._bridge.transport

        async def run() -> None:
            await self._play_out(mute=False)
            await self._act(
                "transfer", f"{target} ({to})", lambda: transport.transfer(to, participant_id)
            )

        await self._owned(run(), "transfer")

    @call_action()
    async def send_dtmf(self, digits: str, participant_id: str | None = None) -> None:
        """Send keypad tones (``0-9 * # A-D``) into the call, e.g. to navigate a menu."""
        with self._refusing("send_dtmf", digits):
            norm = check_digits(digits)
        if self._skip("send_dtmf"):
            return
        transport = self._bridge.transport
        run = self._act("send_dtmf", norm, lambda: transport.send_dtmf(norm, participant_id))
        await self._owned(run, "send_dtmf")

    @call_action(default="")
    async def dial_out(self, number: str) -> str:
        """Call ``number`` (E.164 or SIP URI) into the meeting; the new leg's id."""
        with self._refusing("dial_out", number):
            check_number(number)
        if self._skip("dial_out"):
            return ""
        transport = self._bridge.transport
        run = self._act("dial_out", number, lambda: transport.dial_out(number))
        return await self._owned(run, "dial_out")

    async def _owned(self, coro: Coroutine[Any, Any, T], name: str) -> T:
        """Run a transport action in a task of the call's own: once asked for, it completes
        (or fails, reported) even if the tool or hook that asked is cut off meanwhile --
        never half a transfer or an untracked dial-out leg."""
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._owned_done)
        return await asyncio.shield(task)

    def _owned_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the asker got it, or _act reported it

    async def _play_out(self, mute: bool) -> None:
        """Wait (at most PLAY_OUT_WAIT_S) until the reply in flight or asked for is over
        and its audio has played; with ``mute`` nothing the agent says after it plays."""
        bridge = self._bridge
        deadline = time.monotonic() + PLAY_OUT_WAIT_S
        while time.monotonic() < deadline and bridge.client is not None:
            if not (bridge._replying() or self._awaiting_asked_reply()):
                break
            await asyncio.sleep(_POLL_S)
        if mute:
            bridge.mute_replies = True
        while time.monotonic() < deadline and bridge._pending_out_ms() > 0:
            await asyncio.sleep(_POLL_S)

    # ------------------------------------------------------------------ the bridge's side
    def spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.warning("call %s: %s failed: %r", self.call_id, task.get_name(), exc)

    def _hook(self, name: str, *args: Any) -> None:
        if self._hooks is not None and self._hooks.has(name):
            self._hooks.fire(name, self, *args)

    def started(self) -> None:
        """The bot joined: ``on_call_start``, and the idle check-in if configured."""
        self._loop = asyncio.get_running_loop()
        self._hook("on_call_start")
        bot = self._bridge.config.bot
        if bot.idle_reminder_s is not None or bot.idle_hangup_s is not None:
            self._idle_task = asyncio.create_task(self._idle_loop(), name="idle")

    async def finish(self, summary: CallSummary) -> None:
        """The call is over: ``on_call_end`` (bounded by the hook timeout), then nothing
        more runs for it."""
        self._ended = True
        if self._keys is not None:
            self._keys.cancel()  # keys still gathering when the call ended: nobody to tell
        if self._hanging_up is not None and not self._hanging_up.done():
            self._hanging_up.cancel()  # the call ended some other way meanwhile
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._idle_task
        if self._hooks is not None and self._bridge.joined:  # (a call that never began: none)
            self._hook("on_call_end", summary)
            # Ctrl-C must still exit within its budget: the hooks get a moment, not more
            await self._hooks.drain(_SIGNAL_HOOK_S if summary.interrupted else None)
        if self._hooks is not None and (self._hooks.stats.failures or self._hooks.stats.timeouts):
            st = self._hooks.stats
            log.warning(
                "hooks %s: %d of %d runs failed, %d timed out in this call (see above)",
                self._hooks.path,
                st.failures,
                st.calls,
                st.timeouts,
            )
        for task in list(self._tasks):
            task.cancel()

    def __call__(self, event: ev.BridgeEvent) -> None:
        """The observer: transcript, hooks and the idle clock follow the bridge's events."""
        match event:
            case ev.ParticipantJoined(participant_id=pid):
                p = self._bridge.roster.get(pid)
                if p is not None:
                    self._known[pid] = p
                    self._hook("on_participant_joined", p)
            case ev.ParticipantLeft(participant_id=pid, name=name):
                left = self._known.get(pid) or Participant(pid, name)
                self._hook("on_participant_left", left)
            case ev.UserTranscript(final=True, text=text, participant_id=pid):
                self._last_user = time.monotonic()
                self._user_activity += 1
                self._idle_stage = 0
                self._transcript.append(
                    TranscriptLine("user", text, pid, event.participant_name, time=event.time)
                )
                self._hook("on_user_transcript", text, self.participant(pid))
            case ev.AgentTranscript(final=True, text=text, interrupted=interrupted):
                self._transcript.append(
                    TranscriptLine("agent", text, interrupted=interrupted, time=event.time)
                )
                self._hook("on_agent_transcript", text, interrupted)
            case ev.SpeechStarted() | ev.SpeechStopped():
                self._last_user = time.monotonic()
                self._user_activity += 1
                self._idle_stage = 0
            case ev.ReplyDone():
                self._replies_done += 1
            case ev.DtmfReceived(digit=digit, participant_id=pid):
                self._last_user = time.monotonic()
                self._user_activity += 1
                self._idle_stage = 0
                self._key_pressed(digit, pid)
            case ev.TransportStatus(state=state, detail=detail):
                self._hook("on_status", state, detail)

    # ------------------------------------------------------------------ keypad
    def _key_pressed(self, digit: str, pid: str | None) -> None:
        """``on_dtmf`` runs (in turn with the other hooks); unless it returns True, the key
        joins the sequence told to the agent (``[bot] dtmf = "forward"``)."""
        keys = self._keys
        if self._hooks is not None and self._hooks.has("on_dtmf"):
            kept = self._hooks.submit("on_dtmf", self, digit, self.participant(pid))
            if keys is not None:
                kept.add_done_callback(lambda fut: self._key_unless_kept(fut, digit))
        elif keys is not None:
            keys.add(digit)

    def _key_unless_kept(self, fut: asyncio.Future[Any], digit: str) -> None:
        if fut.cancelled() or self.ended or self._keys is None:
            return
        if fut.result() is True:
            log.debug("call %s: on_dtmf kept key %s from the agent", self.call_id, digit)
            return
        self._keys.add(digit)

    def _forward_keys(self, keys: str) -> None:
        if not self.ended:
            self.spawn(self._tell_keys(keys), "dtmf-forward")

    async def _tell_keys(self, keys: str) -> None:
        """Tell the agent about one key sequence (a reply follows, as to anything said)."""
        client = self._bridge.client
        request = getattr(client, "request_reply", None)
        if client is None or not callable(request):
            log.info("call %s: keys %s not told to the agent: no agent session", self.call_id, keys)
            return
        await request(keypad_message(keys))
        self._asked()
        log.info("call %s: keys %s told to the agent", self.call_id, " ".join(keys))

    # ------------------------------------------------------------------ idle check-in
    def _agent_busy(self) -> bool:
        b = self._bridge
        return (
            b.client is None
            or not b._session_ready
            or b._user_speaking
            or b._replying()
            or b._pending_out_ms() > 0
            or self._awaiting_asked_reply()
            or not len(b.roster)
        )

    async def _idle_loop(self) -> None:
        bot = self._bridge.config.bot
        since = time.monotonic()
        while not self.ended:
            await asyncio.sleep(_IDLE_TICK_S)
            now = time.monotonic()
            if self._agent_busy():
                since = now
                continue
            quiet = now - max(since, self._last_user)
            if self._idle_stage == 0 and bot.idle_reminder_s is not None:
                if quiet >= bot.idle_reminder_s:
                    self._idle_stage = 1
                    since = now
                    await self._on_idle(quiet, remind=True)
            elif (
                self._idle_stage <= 1
                and bot.idle_hangup_s is not None
                and quiet >= bot.idle_hangup_s
            ):
                self._idle_stage = 2
                await self._on_idle(quiet, remind=False)

    def _caller_spoke_since(self, mark: int) -> bool:
        return self._user_activity != mark or self._bridge._user_speaking

    async def _goodbye_played(self, mark: int) -> None:
        """Wait (at most PLAY_OUT_WAIT_S) for the idle goodbye to play, or for the caller
        to speak."""
        bridge = self._bridge
        deadline = time.monotonic() + PLAY_OUT_WAIT_S
        while time.monotonic() < deadline and bridge.client is not None and not self.ended:
            if self._caller_spoke_since(mark):
                return
            if not (
                bridge._replying() or self._awaiting_asked_reply() or bridge._pending_out_ms() > 0
            ):
                return
            await asyncio.sleep(_POLL_S)

    async def _on_idle(self, seconds: float, remind: bool) -> None:
        """``on_idle`` decides when it returns True; otherwise the default: a check-in
        reply, or a goodbye and the hang-up."""
        log.info("call %s: nobody has spoken for %.0f s", self.call_id, seconds)
        mark = self._user_activity  # caller speech from here on calls the hang-up off
        if self._hooks is not None and self._hooks.has("on_idle"):
            handled = await self._hooks.call("on_idle", self, seconds)
            if handled is True or self.ended:
                return
        bot = self._bridge.config.bot
        try:
            if remind:
                await self.reply(bot.idle_reminder)
            else:
                if bot.idle_goodbye and not self._caller_spoke_since(mark):
                    await self.say(bot.idle_goodbye)
                    await self._goodbye_played(mark)
                if self._caller_spoke_since(mark):
                    # they were there after all: stay on the line, idle clock from zero
                    log.info("call %s: the caller spoke: idle hang-up called off", self.call_id)
                    self._idle_stage = 0
                    self._last_user = time.monotonic()
                    return
                await self.hang_up("idle")
        except CallActionError as exc:
            log.warning(
                "call %s: idle %s failed: %s",
                self.call_id,
                "check-in" if remind else "hang-up",
                exc,
            )
