"""The agent client against a real websockets server on loopback (tests/agent_server.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agent_server import WAIT, AgentServer, Conn

from botrun.core.client import AgentClient
from botrun.core.errors import AgentError, UsageError
from botrun.core.protocol import (
    InputAudio,
    NewSession,
    Reconnecting,
    ReplyAudio,
    ReplyCreate,
    ReplyDone,
    ReplyStarted,
    Resumed,
    SessionEnd,
    SessionEnded,
    SessionError,
    SessionReady,
    SessionResume,
    SessionUpdate,
    ToolCall,
    ToolResult,
    TranscriptAgent,
    TranscriptUser,
    decode_client,
    encode_server,
)
from botrun.core.tools import ToolRegistry, make_spec

SESSION = {"system_prompt": "test", "greeting": "Hi"}
KEY = "sk-test-0123456789abcdef"
CHUNK = 960  # 20 ms at 24 kHz


def pcm(n_chunks: int, start: int = 0) -> list[bytes]:
    """Distinct 20 ms chunks: sample values count up, so order and gaps show."""
    out = []
    for i in range(start, start + n_chunks):
        out.append(
            b"".join(((i * 480 + j) % 65536).to_bytes(2, "little") for j in range(CHUNK // 2))
        )
    return out


def client(url: str, **kw: Any) -> AgentClient:
    opts: dict[str, Any] = dict(
        api_key=KEY, backoff_base=0.01, backoff_max=0.05, connect_timeout=2.0, ready_timeout=2.0
    )
    opts.update(kw)
    return AgentClient(url, dict(SESSION), **opts)


class Events:
    """Collects a client's events in the background; tests wait for the ones they expect."""

    def __init__(self, c: AgentClient) -> None:
        self.items: list[Any] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pump(c.events()))

    async def _pump(self, it: AsyncIterator[Any]) -> None:
        try:
            async for ev in it:
                self.items.append(ev)
                self._changed.set()
        except Exception as exc:
            self.error = exc
            self._changed.set()

    async def wait_for(self, kind: type, n: int = 1, timeout: float = WAIT) -> list[Any]:
        async def loop() -> list[Any]:
            while True:
                found = [e for e in self.items if isinstance(e, kind)]
                if len(found) >= n:
                    return found
                if self.error is not None:
                    raise self.error
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(loop(), timeout)

    async def wait_error(self, timeout: float = WAIT) -> BaseException:
        await asyncio.wait_for(self._task, timeout)
        assert self.error is not None
        return self.error

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.items if isinstance(e, kind)]


async def wait_until(pred: Any, timeout: float = WAIT) -> None:
    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(loop(), timeout)


# -- connecting ---------------------------------------------------------------------------


async def test_bearer_key_first_update_and_clean_close() -> None:
    async with AgentServer() as srv:
        c = client(srv.url)
        await c.start()
        assert c.ready and c.session_id == "sess-1"
        conn = await srv.conn(0)
        assert conn.headers["Authorization"] == f"Bearer {KEY}"
        assert conn.log[0] == SessionUpdate(SESSION)
        ev = Events(c)
        c.send_audio(pcm(1)[0])
        await conn.wait_audio(CHUNK)
        await c.close()
        await c.close()  # idempotent
        assert isinstance(conn.log[-1], SessionEnd)
        await ev.wait_for(SessionEnded)
        await asyncio.wait_for(ev._task, WAIT)  # events() ended
        assert ev.error is None
        assert c.stats.audio_sent_bytes == CHUNK


async def test_temporary_token_in_query() -> None:
    async with AgentServer() as srv:
        c = client(srv.url + "?x=1", api_key=None, token="tok-abcdef")
        await c.start()
        conn = await srv.conn(0)
        assert "token=tok-abcdef" in conn.path and "x=1" in conn.path
        assert "Authorization" not in conn.headers
        await c.close()


async def test_token_provider_mints_a_token_per_connection() -> None:
    minted: list[str] = []

    async def provider() -> str:
        minted.append(f"tok-{len(minted) + 1:04d}")
        return minted[-1]

    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        conn.abort()

    async def second(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        await conn.send(SessionReady("s1"))

    async with AgentServer([first, second]) as srv:
        c = client(srv.url, api_key=None, token_provider=provider)
        ev = Events(c)
        await c.start()
        await ev.wait_for(Resumed)
        assert minted == ["tok-0001", "tok-0002"]
        assert [cn.path.rsplit("token=", 1)[1] for cn in srv.conns] == minted
        await c.close()


async def test_tools_added_to_session_from_registry() -> None:
    def ping(host: str) -> str:
        """Ping a host."""
        return "pong"

    async with AgentServer() as srv:
        c = client(srv.url, tools=ToolRegistry([make_spec(ping)]))
        await c.start()
        first = (await srv.conn(0)).log[0]
        assert isinstance(first, SessionUpdate)
        assert [t["name"] for t in first.session["tools"]] == ["ping"]
        await c.close()


async def test_audio_before_ready_is_buffered_and_sent_in_order() -> None:
    chunks = pcm(10)

    async def script(conn: Conn) -> None:
        await conn.next()
        await gate.wait()
        await conn.send(SessionReady("s1"))

    gate = asyncio.Event()
    async with AgentServer([script]) as srv:
        c = client(srv.url)
        for ch in chunks[:4]:
            c.send_audio(ch)  # before start: nothing is connected yet
        start = asyncio.create_task(c.start())
        conn = await srv.conn(0)
        await wait_until(lambda: len(conn.log) == 1)
        for ch in chunks[4:]:
            c.send_audio(ch)  # connected, not ready
        assert not conn.audio
        gate.set()
        await start
        await conn.wait_audio(10 * CHUNK)
        assert bytes(conn.audio) == b"".join(chunks)
        assert c.stats.audio_replayed_ms == pytest.approx(200.0)
        await c.close()


async def test_audio_on_a_ready_session_leaves_before_send_audio_returns() -> None:
    # Issue 15's CPU goal: the hand-off tick that made the audio writes it to the socket
    # itself; waking a writer task for every 20 ms of every call was a quarter of the loop.
    # Nothing stays queued when send_audio returns, and the server gets it all, in order.
    chunks = pcm(5)
    async with AgentServer() as srv:
        c = client(srv.url)
        await c.start()
        conn = await srv.conn(0)
        for i, ch in enumerate(chunks, 1):
            c.send_audio(ch)
            assert c.buffered_ms == 0.0
            assert c.stats.audio_sent_bytes == i * CHUNK
        await conn.wait_audio(5 * CHUNK)
        assert bytes(conn.audio) == b"".join(chunks)
        await c.close()


async def test_audio_behind_a_queued_control_message_keeps_its_place() -> None:
    # A control message waiting for the writer goes first: audio sent meanwhile waits for
    # the writer too instead of jumping ahead on the direct path.
    chunks = pcm(3)
    async with AgentServer() as srv:
        c = client(srv.url)
        await c.start()
        conn = await srv.conn(0)
        await c.update_session({"system_prompt": "shorter"})  # queued for the writer
        for ch in chunks:
            c.send_audio(ch)
        assert c.buffered_ms == pytest.approx(60.0)
        await conn.wait_audio(3 * CHUNK)
        kinds = [type(e) for e in conn.log]
        assert kinds.index(SessionUpdate) < kinds.index(InputAudio)
        assert bytes(conn.audio) == b"".join(chunks)
        await c.close()


async def test_audio_behind_unsent_bytes_waits_for_the_writer_in_order() -> None:
    # A service that stops reading: once the socket holds unsent bytes, audio goes through
    # the writer (which waits for them to drain) and nothing is reordered or lost.
    from websockets.asyncio.server import ServerConnection, serve

    reading = asyncio.Event()
    received = bytearray()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # session.update
        await ws.send(encode_server(SessionReady("s1")))
        await reading.wait()  # not reading: websockets stops reading the socket
        async for raw in ws:
            ev = decode_client(raw)
            if isinstance(ev, InputAudio):
                received.extend(ev.audio)

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        c = client(f"ws://127.0.0.1:{port}/")
        await c.start()
        chunks = pcm(64)
        sent = 0
        for _ in range(2000):  # until the kernel's buffers are full
            for ch in chunks:
                c.send_audio(ch)
                sent += 1
            await asyncio.sleep(0)
            if c._ws.transport.get_write_buffer_size():
                break
        assert c._ws.transport.get_write_buffer_size(), "the socket never filled"
        c.send_audio(chunks[0])
        sent += 1
        assert c.buffered_ms == pytest.approx(20.0)  # left for the writer
        reading.set()
        await wait_until(lambda: len(received) == sent * CHUNK, timeout=30)
        expected = b"".join(chunks)
        assert bytes(received) == expected * (sent // 64) + expected[: (sent % 64) * CHUNK]
        await c.close()


async def test_buffer_bound_drops_oldest_and_counts() -> None:
    chunks = pcm(15)
    async with AgentServer() as srv:
        c = client(srv.url, buffer_s=0.1)  # 100 ms = 5 chunks
        for ch in chunks:
            c.send_audio(ch)
        assert c.stats.audio_dropped_ms == pytest.approx(200.0)
        assert c.buffered_ms == pytest.approx(100.0)
        await c.start()
        conn = await srv.conn(0)
        await conn.wait_audio(5 * CHUNK)
        assert bytes(conn.audio) == b"".join(chunks[10:])
        await c.close()


async def test_odd_length_audio_is_refused() -> None:
    c = client("ws://127.0.0.1:9/")
    with pytest.raises(ValueError, match="even number"):
        c.send_audio(b"\0\0\0")


# -- fatal errors -----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["UNAUTHORIZED", "FORBIDDEN"])
async def test_auth_error_in_band_is_fatal_and_names_the_variable(
    code: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def script(conn: Conn) -> None:
        await conn.next()
        await conn.send(SessionError(code, f"bad key {KEY}"))
        await conn.close(1008, code)

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        with pytest.raises(AgentError) as info, caplog.at_level(logging.DEBUG):
            await c.start()
        msg = str(info.value)
        assert "ASSEMBLYAI_API_KEY" in msg and code in msg and srv.url in msg
        assert KEY not in msg
        assert len(srv.conns) == 1  # no retry
        ev = Events(c)
        assert isinstance(await ev.wait_error(), AgentError)
    from botrun.core.secrets import RedactingFilter

    filt = RedactingFilter()
    for rec in caplog.records:
        filt.filter(rec)
        assert KEY not in rec.getMessage()


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_refused_at_handshake(status: int) -> None:
    async with AgentServer(http_status=status) as srv:
        c = client(srv.url)
        with pytest.raises(AgentError, match=f"HTTP {status}.*ASSEMBLYAI_API_KEY"):
            await c.start()


async def test_close_1008_at_connect_without_reason_is_fatal() -> None:
    async def script(conn: Conn) -> None:
        await conn.next()
        await conn.close(1008, "")

    async with AgentServer([script]) as srv:
        with pytest.raises(AgentError, match="1008"):
            await client(srv.url).start()
        assert len(srv.conns) == 1


async def test_connection_refused_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/v1/ws"
    c = client(url, start_attempts=3)
    with pytest.raises(AgentError, match=rf"cannot connect to the voice agent at {url}.*3 times"):
        await c.start()


async def test_connect_timeout_when_handshake_never_completes() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(WAIT)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        c = client(f"ws://127.0.0.1:{port}/", connect_timeout=0.1, start_attempts=2)
        with pytest.raises(AgentError, match=r"no connection within 0\.1 s"):
            await c.start()
    finally:
        server.close()


async def test_no_ready_times_out_and_retries() -> None:
    async def mute(conn: Conn) -> None:
        await conn.next()

    async with AgentServer([mute]) as srv:
        c = client(srv.url, ready_timeout=0.1, start_attempts=2)
        with pytest.raises(AgentError, match=r"no session\.ready"):
            await c.start()
        assert len(srv.conns) == 2


# -- reconnect, resume, fresh sessions -----------------------------------------------------


async def test_resume_mid_reply_loses_no_inbound_audio() -> None:
    chunks = pcm(30)
    drop = asyncio.Event()
    gate = asyncio.Event()

    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        await conn.send(ReplyAudio(b"\1\0" * 480))
        await drop.wait()
        conn.abort()

    async def second(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        await gate.wait()
        await conn.send(SessionReady("s1"))

    async with AgentServer([first, second]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        conn0 = await srv.conn(0)
        await ev.wait_for(ReplyAudio)
        assert c.state.reply_active
        for ch in chunks[:10]:
            c.send_audio(ch)
        await conn0.wait_audio(10 * CHUNK)
        drop.set()
        await ev.wait_for(Reconnecting)
        assert not c.ready and not c.state.reply_active  # the in-flight reply is lost
        for ch in chunks[10:20]:
            c.send_audio(ch)  # during the outage: buffered
        conn1 = await srv.conn(1)
        gate.set()
        await ev.wait_for(Resumed)
        for ch in chunks[20:]:
            c.send_audio(ch)
        await conn1.wait_audio(20 * CHUNK)
        assert bytes(srv.audio) == b"".join(chunks)  # every sample, in order
        assert c.stats.audio_dropped_ms == 0
        assert c.stats.resumes == 1 and c.stats.reconnects == 1
        assert c.session_id == "s1"
        assert ev.of(Resumed) == [Resumed("s1")]
        await c.close()


@pytest.mark.parametrize(
    "how", ["abort", "close1011", "close1001", "server_error", "agent_timeout", "rate_limited"]
)
async def test_transient_failures_resume(how: str) -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        if how == "abort":
            conn.abort()
        elif how.startswith("close"):
            await conn.close(int(how[5:]), "going")
        else:
            await conn.send(SessionError(how, "try again"))

    async def second(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        await conn.send(SessionReady("s1"))

    async with AgentServer([first, second]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        await ev.wait_for(Resumed)
        assert ev.of(Reconnecting)[0].attempt == 1
        assert c.ready and len(srv.conns) == 2
        await c.close()


@pytest.mark.parametrize("variant", ["in-band", "close-1008"])
async def test_session_not_found_starts_fresh_session(variant: str) -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        conn.abort()

    async def refuse(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        if variant == "in-band":
            await conn.send(SessionError("session_not_found", "no such session"))
        else:
            await conn.close(1008, "session_not_found")

    async def fresh(conn: Conn) -> None:
        first_msg = await conn.next()
        assert isinstance(first_msg, SessionUpdate)
        assert first_msg.session == {"system_prompt": "test"}  # same config, no re-greeting
        await conn.send(SessionReady("s2"))

    async with AgentServer([first, refuse, fresh]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        await ev.wait_for(NewSession)
        assert ev.of(NewSession) == [NewSession("s2", "s1")]
        assert c.session_id == "s2" and c.ready and c.stats.fresh_sessions == 1
        await c.close()


@pytest.mark.parametrize("code", ["session_expired", "session_forbidden"])
async def test_expired_session_mid_call_starts_fresh(code: str) -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(SessionError(code, "limit"))
        await conn.close(1008, code)

    async def fresh(conn: Conn) -> None:
        assert isinstance(await conn.next(), SessionUpdate)
        await conn.send(SessionReady("s2"))

    async with AgentServer([first, fresh]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        await ev.wait_for(NewSession)
        assert c.session_id == "s2"
        await c.close()


async def test_unsolicited_session_ended_starts_fresh() -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(SessionEnded(10800.0, 5000.0))
        await conn.close()

    async def fresh(conn: Conn) -> None:
        assert isinstance(await conn.next(), SessionUpdate)
        await conn.send(SessionReady("s2"))

    async with AgentServer([first, fresh]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        await ev.wait_for(NewSession)
        await c.close()


async def test_resume_window_passed_means_fresh_session() -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        conn.abort()

    async def fresh(conn: Conn) -> None:
        assert isinstance(await conn.next(), SessionUpdate)
        await conn.send(SessionReady("s2"))

    async with AgentServer([first, fresh]) as srv:
        c = client(srv.url, reconnect_window_s=0.0, backoff_base=0.02)
        ev = Events(c)
        await c.start()
        await ev.wait_for(NewSession)
        await c.close()


async def test_keepalive_detects_a_dead_peer() -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        conn.ws.transport.pause_reading()  # alive TCP, but no pong ever comes back
        await conn.server.conn(1)
        conn.abort()

    async def second(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        await conn.send(SessionReady("s1"))

    async with AgentServer([first, second]) as srv:
        c = client(srv.url, ping_interval=0.05, ping_timeout=0.1)
        ev = Events(c)
        await c.start()
        await ev.wait_for(Resumed)
        assert "1011" in ev.of(Reconnecting)[0].reason
        await c.close()


async def test_gives_up_when_the_service_stays_away() -> None:
    async with AgentServer() as srv:
        # give_up_s is the window in which it must retry at least twice. With 0.2 s, one
        # 0.2 s stall of the loop on a loaded machine made it give up after one attempt;
        # 1 s of ~50 ms backoffs leaves room for many.
        c = client(srv.url, give_up_s=1.0, backoff_max=0.05)
        ev = Events(c)
        await c.start()
        await srv.stop()
        err = await ev.wait_error()
        assert isinstance(err, AgentError) and "could not reconnect within 1 s" in str(err)
        assert len(ev.of(Reconnecting)) >= 2
        await c.close()


# -- bad input from the server -----------------------------------------------------------------


async def test_malformed_frames_are_counted_and_survived() -> None:
    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        for junk in [
            "{nope",
            "[1,2]",
            '{"type": 3}',
            b"\x00\x01binary",
            '{"type":"reply.audio","data":"%%%"}',
            '{"type":"reply.audio","data":"AAAA"}',
            '{"type":"tool.call","call_id":"c"}',
        ]:
            await conn.send(junk)
        await conn.send({"type": "reply.brand_new_event", "x": 1})
        await conn.send(TranscriptUser("still here", "i1"))

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        await ev.wait_for(TranscriptUser)
        assert c.stats.protocol_errors == 7 and c.stats.unknown_events == 1
        assert c.stats.connects == 1 and c.ready
        await c.close()


async def test_oversized_message_is_survived_by_resuming() -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send({"type": "transcript.user", "text": "x" * 100_000, "item_id": "i"})

    async def second(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        await conn.send(SessionReady("s1"))
        await conn.send(TranscriptUser("small", "i2"))

    async with AgentServer([first, second]) as srv:
        c = client(srv.url, max_message_bytes=64 * 1024)
        ev = Events(c)
        await c.start()
        await ev.wait_for(TranscriptUser)
        assert ev.of(TranscriptUser) == [TranscriptUser("small", "i2")]
        assert c.stats.oversized_messages == 1 and c.stats.resumes == 1
        await c.close()


async def test_recoverable_session_errors_keep_the_session() -> None:
    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(SessionError("invalid_value", "volume out of range", "output.volume"))
        await conn.send(TranscriptUser("ok", "i"))

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        await ev.wait_for(TranscriptUser)
        assert ev.of(SessionError)[0].param == "output.volume"
        assert c.stats.connects == 1 and c.stats.session_errors == 1
        await c.close()


# -- replies, barge-in, tools -------------------------------------------------------------------


async def test_stale_audio_of_interrupted_reply_is_dropped() -> None:
    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        await conn.send(ReplyAudio(b"\1\0" * 10))
        await conn.send(TranscriptAgent("r1", "Hel", True))
        await conn.send(ReplyDone("r1", "interrupted"))
        await conn.send(ReplyAudio(b"\2\0" * 10))  # stale
        await conn.send(ReplyStarted("r2"))
        await conn.send(ReplyAudio(b"\3\0" * 10))
        await conn.send(ReplyDone("r2"))

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        await ev.wait_for(ReplyDone, 2)
        audio = ev.of(ReplyAudio)
        assert [(a.reply_id, a.pcm[:1]) for a in audio] == [("r1", b"\1"), ("r2", b"\3")]
        assert c.stats.stale_audio_chunks == 1
        await c.close()


def registry(calls: list[dict], done: asyncio.Event | None = None) -> ToolRegistry:
    def lookup_order(order_id: str) -> dict:
        """Look up an order."""
        calls.append({"order_id": order_id})
        return {"order_id": order_id, "status": "shipped"}

    return ToolRegistry([make_spec(lookup_order)], timeout_s=2.0)


async def test_tool_result_held_until_reply_done() -> None:
    calls: list[dict] = []
    step = asyncio.Event()

    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        await conn.send(ToolCall("c1", "lookup_order", {"order_id": "A1"}))
        await step.wait()
        assert await conn.next() == ReplyCreate("marker")  # nothing before it
        await conn.send(ReplyDone("r1"))
        result = await conn.next()
        assert result == ToolResult("c1", '{"order_id": "A1", "status": "shipped"}')

    async with AgentServer([script]) as srv:
        c = client(srv.url, tools=registry(calls))
        ev = Events(c)
        await c.start()
        await wait_until(lambda: c.state.held_results == ["c1"])
        await c.request_reply("marker")
        step.set()
        await wait_until(lambda: c.stats.tool_results_sent == 1)
        assert calls == [{"order_id": "A1"}]
        assert ev.of(ToolCall)[0].name == "lookup_order"
        await c.close()


async def test_tool_result_discarded_when_reply_interrupted() -> None:
    step = asyncio.Event()

    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        await conn.send(ToolCall("c1", "lookup_order", {"order_id": "A1"}))
        await step.wait()
        await conn.send(ReplyDone("r1", "interrupted"))
        await conn.send(ReplyStarted("r2"))
        await conn.send(ReplyDone("r2"))
        assert await conn.next() == ReplyCreate("marker")

    async with AgentServer([script]) as srv:
        c = client(srv.url, tools=registry([]))
        ev = Events(c)
        await c.start()
        await wait_until(lambda: c.state.held_results == ["c1"])
        step.set()
        await ev.wait_for(ReplyDone, 2)
        await c.request_reply("marker")
        await wait_until(lambda: any(isinstance(m, ReplyCreate) for m in srv.conns[0].log))
        assert not [m for m in srv.conns[0].log if isinstance(m, ToolResult)]
        assert c.stats.tool_results_discarded == 1 and c.stats.tool_results_sent == 0
        await c.close()


async def test_tool_result_resent_after_resume() -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        await conn.send(ToolCall("c1", "lookup_order", {"order_id": "B2"}))
        await drop.wait()
        conn.abort()  # mid-reply: reply.done never comes

    async def second(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        await conn.send(SessionReady("s1"))
        assert await conn.next() == ToolResult("c1", '{"order_id": "B2", "status": "shipped"}')

    drop = asyncio.Event()
    async with AgentServer([first, second]) as srv:
        c = client(srv.url, tools=registry([]))
        ev = Events(c)
        await c.start()
        await wait_until(lambda: c.state.held_results == ["c1"])
        drop.set()
        await ev.wait_for(Resumed)
        await wait_until(lambda: c.stats.tool_results_sent == 1)
        await c.close()


async def test_tool_errors_and_unknown_tools_reach_the_agent() -> None:
    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        await conn.send(ToolCall("c1", "nope", {}))
        await conn.send(ReplyDone("r1"))
        res = await conn.next()
        assert isinstance(res, ToolResult) and "unknown tool 'nope'" in res.result

    async with AgentServer([script]) as srv:
        c = client(srv.url, tools=registry([]))
        await c.start()
        await wait_until(lambda: c.stats.tool_results_sent == 1)
        await c.close()


# -- session updates ----------------------------------------------------------------------------


async def test_update_session_mid_call_and_immutable_refused() -> None:
    async with AgentServer() as srv:
        c = client(srv.url)
        await c.start()
        conn = await srv.conn(0)
        await c.update_session({"system_prompt": "shorter"})
        assert await conn.next() == SessionUpdate({"system_prompt": "shorter"})
        with pytest.raises(UsageError, match="greeting"):
            await c.update_session({"greeting": "other"})
        await c.close()


async def test_update_while_disconnected_is_applied_after_resume() -> None:
    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        await drop.wait()
        conn.abort()

    async def second(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        await gate.wait()
        await conn.send(SessionReady("s1"))
        assert await conn.next() == SessionUpdate({"input": {"keyterms": ["botrun"]}})

    drop, gate = asyncio.Event(), asyncio.Event()
    async with AgentServer([first, second]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        drop.set()
        await ev.wait_for(Reconnecting)
        await c.update_session({"input": {"keyterms": ["botrun"]}})
        gate.set()
        await ev.wait_for(Resumed)
        conn1 = await srv.conn(1)
        await wait_until(lambda: len(conn1.log) >= 2)
        await c.close()


async def test_cancelled_start_closes_the_connection() -> None:
    async def mute(conn: Conn) -> None:
        await conn.next()

    async with AgentServer([mute]) as srv:
        c = client(srv.url)
        start = asyncio.create_task(c.start())
        conn = await srv.conn(0)
        await wait_until(lambda: len(conn.log) == 1)
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
        await asyncio.wait_for(conn.closed.wait(), WAIT)
        await c.close()  # still fine


async def test_close_before_start_and_start_after_close() -> None:
    c = client("ws://127.0.0.1:9/")
    await c.close()
    with pytest.raises(AgentError, match="closed"):
        await c.start()


async def test_close_sends_queued_audio_before_session_end() -> None:
    async with AgentServer() as srv:
        c = client(srv.url)
        await c.start()
        for ch in pcm(5):
            c.send_audio(ch)
        await c.close()
        conn = await srv.conn(0)
        kinds = [type(m) for m in conn.log]
        assert kinds[-1] is SessionEnd and kinds.count(InputAudio) >= 1
        assert len(conn.audio) == 5 * CHUNK


# -- run_events: each event handed over in the pass that read it ---------------------------


async def test_run_events_hands_over_every_event_in_order_and_returns_after_close() -> None:
    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        for i in range(5):
            await conn.send(ReplyAudio(bytes([i + 1, 0]) * 10))
        await conn.send(ReplyDone("r1"))

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        await c.start()  # session.ready waits in the queue: it is handed over first
        got: list[Any] = []
        replied = asyncio.Event()

        def handle(e: Any) -> None:
            got.append(e)
            if isinstance(e, ReplyDone):
                replied.set()

        task = asyncio.create_task(c.run_events(handle))
        await asyncio.wait_for(replied.wait(), WAIT)
        assert isinstance(got[0], SessionReady)
        assert [type(e) for e in got[1:3]] == [ReplyStarted, ReplyAudio]
        assert [a.pcm[:1] for a in got if isinstance(a, ReplyAudio)] == [
            bytes([i + 1]) for i in range(5)
        ]
        await c.close()
        await asyncio.wait_for(task, WAIT)  # returned: the session is over
        assert isinstance(got[-1], SessionEnded)


async def test_an_event_made_while_the_handler_runs_comes_right_after_it() -> None:
    async with AgentServer() as srv:
        c = client(srv.url)
        await c.start()
        order: list[str] = []

        def handle(e: Any) -> None:
            order.append(type(e).__name__ if not isinstance(e, str) else e)
            if isinstance(e, SessionReady):
                c._emit("made inside")  # e.g. a notice the handling caused
                order.append("handler returned")

        task = asyncio.create_task(c.run_events(handle))
        await wait_until(lambda: "made inside" in order)
        assert order == ["SessionReady", "handler returned", "made inside"]
        await c.close()
        await asyncio.wait_for(task, WAIT)


async def test_a_handler_that_raises_ends_run_events_with_its_error_not_the_session() -> None:
    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(ReplyStarted("r1"))
        await conn.send(ReplyAudio(b"\1\0" * 10))
        await conn.send(ReplyAudio(b"\2\0" * 10))
        await conn.send(ReplyDone("r1"))

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        await c.start()
        got: list[Any] = []

        def handle(e: Any) -> None:
            got.append(e)
            if isinstance(e, ReplyAudio):
                raise RuntimeError("the caller's bug")

        with pytest.raises(RuntimeError, match="the caller's bug"):
            await asyncio.wait_for(c.run_events(handle), WAIT)
        assert [type(e) for e in got] == [SessionReady, ReplyStarted, ReplyAudio]
        # the session goes on; what the handler did not get is still there, in order
        ev = Events(c)
        await ev.wait_for(ReplyDone)
        assert [a.pcm[:1] for a in ev.of(ReplyAudio)] == [b"\2"]
        assert c.ready
        c.send_audio(pcm(1)[0])
        await (await srv.conn(0)).wait_audio(CHUNK)
        assert len(srv.conns) == 1
        await c.close()


async def test_run_events_raises_when_the_session_fails_for_good() -> None:
    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.send(SessionError("UNAUTHORIZED", "key revoked"))
        await conn.close(1008, "UNAUTHORIZED")

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        await c.start()
        got: list[Any] = []
        with pytest.raises(AgentError, match="ASSEMBLYAI_API_KEY"):
            await asyncio.wait_for(c.run_events(got.append), WAIT)
        assert [type(e) for e in got] == [SessionReady, SessionError]
        await c.close()


async def test_a_handler_raising_stopiteration_still_ends_run_events() -> None:
    """(A future cannot carry StopIteration: run_events used to wait forever.)"""
    async with AgentServer() as srv:
        c = client(srv.url)
        await c.start()

        def handle(e: Any) -> None:
            raise StopIteration

        with pytest.raises(RuntimeError, match="StopIteration"):
            await asyncio.wait_for(c.run_events(handle), WAIT)
        await c.close()


# -- messages handled as the socket reads them (core/agent_socket.py) ----------------------


def _burst(conn: Conn, frames: list[tuple[str, bytes, bool]]) -> None:
    """Frame ``(kind, data, fin)`` messages with the server's own protocol object and write
    them in one go, so the client most likely parses them in one read."""
    p = conn.ws.protocol
    for kind, data, fin in frames:
        if kind == "text":
            p.send_text(data, fin=fin)
        elif kind == "cont":
            p.send_continuation(data, fin=fin)
        else:
            p.send_binary(data, fin=fin)
    conn.ws.transport.write(b"".join(p.data_to_send()))


async def test_messages_handled_as_read_keep_their_order_behind_what_recv_gets() -> None:
    """Once the session is ready, whole text messages are handled in the pass that read
    them, outside any task; a fragmented or binary message goes through recv() and the
    text after it waits its turn, so the handler sees everything in the order sent."""
    sent = asyncio.Event()
    go = asyncio.Event()

    def audio(i: int) -> bytes:
        return encode_server(ReplyAudio(bytes([i, 0]) * 10)).encode()

    async def script(conn: Conn) -> None:
        await conn.ready("s1")
        await go.wait()
        frag = audio(3)
        _burst(
            conn,
            [
                ("text", encode_server(ReplyStarted("r1")).encode(), True),
                ("text", audio(1), True),
                ("text", audio(2), True),
                ("text", frag[:20], False),  # reply audio 3, in two fragments
                ("cont", frag[20:], True),
                ("text", audio(4), True),
                ("binary", b"\x00\x01", True),  # not this protocol: counted, survived
                ("text", audio(5), True),
            ],
        )
        await asyncio.sleep(0.05)
        await conn.send(ReplyAudio(bytes([6, 0]) * 10))  # a read of its own
        await conn.send(ReplyDone("r1"))
        sent.set()
        await conn.hold()

    async with AgentServer([script]) as srv:
        c = client(srv.url)
        await c.start()
        got: list[tuple[Any, bool]] = []  # (event, handed over inside a task)
        done = asyncio.Event()

        def handle(e: Any) -> None:
            got.append((e, asyncio.current_task() is not None))
            if isinstance(e, ReplyDone):
                done.set()

        task = asyncio.create_task(c.run_events(handle))
        await wait_until(lambda: c._ws is not None and c._ws.on_text is not None)
        go.set()
        await asyncio.wait_for(done.wait(), WAIT)
        audio_got = [e.pcm[0] for e, _ in got if isinstance(e, ReplyAudio)]
        assert audio_got == [1, 2, 3, 4, 5, 6]
        assert isinstance(got[-1][0], ReplyDone)
        assert c.stats.protocol_errors == 1  # the binary message
        in_task = {e.pcm[0]: t for e, t in got if isinstance(e, ReplyAudio)}
        assert in_task[3] is True  # the fragmented message came through recv()
        assert in_task[6] is False  # a whole text message on a quiet socket did not
        assert c._ws.waiting == 0
        await c.close()
        await asyncio.wait_for(task, WAIT)


async def test_a_message_that_fails_as_read_ends_the_connection_as_it_did_in_the_reader() -> None:
    """A transient session.error handled as it is read (after ready, on a quiet socket):
    the connection is replaced and the session resumed, as when the reader handled it."""

    async def first(conn: Conn) -> None:
        await conn.ready("s1")
        await conn.hold()

    async def second(conn: Conn) -> None:
        assert await conn.next() == SessionResume("s1")
        await conn.send(SessionReady("s1"))
        await conn.hold()

    async with AgentServer([first, second]) as srv:
        c = client(srv.url)
        ev = Events(c)
        await c.start()
        await wait_until(lambda: c._ws is not None and c._ws.on_text is not None)
        await srv.conns[0].send(SessionError("server_error", "try again"))
        await ev.wait_for(Resumed)
        assert c.stats.reconnects == 1 and len(srv.conns) == 2
        assert c._direct_failed is None
        await c.close()
