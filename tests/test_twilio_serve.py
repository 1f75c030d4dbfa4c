"""``botrun serve``'s Twilio routes against bad and hostile input: signatures, unknown and
finished calls, retries, the call limit, malformed Media Streams messages, missing settings.
Everything through the real app (``build``) on loopback and the fake Twilio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from fake_twilio import AUTH_TOKEN, sign
from speech import assert_found_in_order
from twilio_support import as_pcm, ulaw_speech, wait_for
from twilio_support import serve_with_twilio as serve_

from botrun.core.errors import ConfigError

pytest.importorskip("twilio")

DEAD_AGENT = "ws://127.0.0.1:9/agent"  # no stream starts in the webhook-only tests


async def test_unsigned_or_forged_webhooks_are_refused_and_start_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve_(monkeypatch, tmp_path, DEAD_AGENT) as serve:
        tw = serve.twilio
        url = serve.url + "/twilio/voice"
        params = {"CallSid": "CA" + "1" * 32, "From": "+15551112222", "To": "+15553334444"}
        for signature in (None, "bm90IGEgc2lnbmF0dXJl", sign(url, params, "another-token")):
            status, _ = await tw.post(url, params, signature=signature)
            assert status == 403
        # Signed for another URL (the address serve listens on behind a proxy, say) or with
        # the parameters changed after signing: refused too.
        status, _ = await tw.post(url, params, signature=sign(url + "?x=1", params))
        assert status == 403
        status, _ = await tw.post(url, {**params, "From": "+1999"}, signature=sign(url, params))
        assert status == 403
        status, _ = await tw.post(
            serve.url + "/twilio/status", {**params, "CallStatus": "completed"}, signature=None
        )
        assert status == 403
        assert serve.calls.pending == {} and serve.calls.active == {}
        # The stream's upgrade needs the signature as well: refused before any WebSocket.
        ws_url = serve.url.replace("http", "ws") + "/twilio/stream"
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"X-Twilio-Signature": sign(ws_url, {}, "another-token")}):
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await http.ws_connect(ws_url, headers=headers)
                assert err.value.status == 403
        # The right signature: answered.
        call, status, twiml = await tw.incoming_call()
        assert status == 200 and "<Stream" in twiml and call.sid in serve.calls.pending


async def test_retries_never_start_a_second_bot_and_the_limit_is_polite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve_(monkeypatch, tmp_path, DEAD_AGENT, max_calls=1) as serve:
        tw = serve.twilio
        call, status, first = await tw.incoming_call(sid="CA" + "2" * 32)
        # Twilio retries the same CallSid: the same answer, still one call.
        _, status2, again = await tw.incoming_call(sid=call.sid)
        assert status == status2 == 200 and again == first
        assert list(serve.calls.pending) == [call.sid]
        # A second caller beyond --max-calls 1: told politely, and hung up.
        _, status3, busy = await tw.incoming_call(sid="CA" + "3" * 32)
        assert status3 == 200
        assert "<Say>" in busy and "<Hangup" in busy and "<Stream" not in busy
        assert list(serve.calls.pending) == [call.sid]


async def test_streams_for_unknown_or_finished_calls_are_closed_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from fake_twilio import FakeCall

    async with serve_(monkeypatch, tmp_path, DEAD_AGENT) as serve:
        tw = serve.twilio
        twiml = (
            '<?xml version="1.0"?><Response><Connect><Stream url="'
            + serve.url.replace("http", "ws")
            + '/twilio/stream" /></Connect></Response>'
        )
        stranger = FakeCall("CA" + "4" * 32, "+1", "+2", "inbound")
        with caplog.at_level(logging.WARNING, logger="botrun.serve.twilio"):
            stream = await tw.open_stream(stranger, twiml)
            await asyncio.wait_for(stream.closed.wait(), 10)
        assert stream.ws.close_code == 1008
        lines = [r for r in caplog.records if stranger.sid in r.getMessage()]
        assert len(lines) == 1 and "no webhook announced" in lines[0].getMessage()
        # A call that finished (its status callback said so before its stream came).
        call, _, twiml2 = await tw.incoming_call()
        status, _ = await tw.post(
            serve.url + "/twilio/status",
            {"CallSid": call.sid, "CallStatus": "canceled", "From": call.from_},
        )
        assert status == 204
        _, _, again = await tw.incoming_call(sid=call.sid)
        assert "<Stream" not in again and "<Hangup" in again
        stream2 = await tw.open_stream(call, twiml2)
        await asyncio.wait_for(stream2.closed.wait(), 10)
        assert stream2.ws.close_code == 1008
        assert serve.calls.refused_streams == 2 and serve.calls.active == {}
        # A media format other than μ-law 8 kHz mono: closed (1003), the call forgotten.
        call3, _, twiml3 = await tw.incoming_call()
        pcm = {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}
        stream3 = await tw.open_stream(call3, twiml3, media_format=pcm)
        await asyncio.wait_for(stream3.closed.wait(), 10)
        assert stream3.ws.close_code == 1003 and call3.sid in serve.calls.finished


async def test_malformed_media_streams_messages_are_counted_and_the_call_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.core.sim import Simulator

    voice = ulaw_speech("Hello there, this is a test of a noisy line.", tmp_path / "v.wav")
    async with (
        Simulator() as sim,
        serve_(monkeypatch, tmp_path, sim.url) as serve,
    ):
        tw = serve.twilio
        call, _, twiml = await tw.incoming_call()
        stream = await tw.open_stream(call, twiml)
        await wait_for(lambda: call.sid in serve.calls.active, "the call")
        transport = serve.calls.active[call.sid].transport
        await wait_for(lambda: sim.sessions, "the agent session")
        bad = [
            "not json",
            "[1, 2]",
            '{"event": "media", "media": {"payload": "***not base64***"}}',
            '{"event": "media", "media": {}}',
            '{"event": "media"}',
            '{"event": "dtmf", "dtmf": {"digit": "x"}}',
            '{"event": "mark", "mark": {"name": "never-sent"}}',
            '{"event": "surprise"}',
            '{"event": "start", "start": {"callSid": "CA1", "streamSid": "MZ1"}}',
            "x" * 100_000,  # oversized
            b"\x00\x01binary",
        ]
        for frame in bad:
            await stream.send_raw(frame)
        # A second stream for the same call (a replay): closed; the first one goes on.
        twin = await tw.open_stream(call, twiml)
        await asyncio.wait_for(twin.closed.wait(), 10)
        assert twin.ws.close_code == 1008 and serve.calls.refused_streams == 1
        call.stream = stream
        # Odd sizes are fine for μ-law (one byte a sample): 3 and 161 bytes.
        await stream.speak(b"\xff\xfe\xfd")
        await stream.speak(voice[:161])
        await stream.speak(voice)
        await wait_for(lambda: transport.stats.bad_messages >= len(bad), "the bad messages")
        await wait_for(
            lambda: sim.session().received_samples >= len(voice), "the voice at the agent"
        )
        await stream.stop()
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 15)
        received = np.frombuffer(sim.session().received_audio, dtype="<i2")

    assert transport.stats.bad_messages == len(bad)
    assert transport.stats.media_in >= len(voice) // 160
    # Every good byte reached the agent (μ-law passes through: 3 + 161 + the voice), the
    # voice in order as it was spoken.
    assert len(received) >= 3 + 161 + len(voice)
    assert_found_in_order(as_pcm(voice), received, block=1600, min_corr=0.99)


async def test_an_oversized_media_frame_is_ignored_and_the_call_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probe item 1: a 4 MB ``media`` frame (over the protocol's limit, under the socket's
    hard limit) is logged, counted and ignored: the socket stays open, the call goes on."""
    from botrun.core.sim import Simulator

    voice = ulaw_speech("Still here after the big frame.", tmp_path / "v.wav")
    huge = '{"event": "media", "media": {"payload": "' + "A" * 4_000_000 + '"}}'
    async with Simulator() as sim, serve_(monkeypatch, tmp_path, sim.url) as serve:
        tw = serve.twilio
        call, _, twiml = await tw.incoming_call()
        stream = await tw.open_stream(call, twiml)
        await wait_for(lambda: call.sid in serve.calls.active, "the call")
        transport = serve.calls.active[call.sid].transport
        await wait_for(lambda: sim.sessions, "the agent session")
        await stream.send_raw(huge)
        await wait_for(lambda: transport.stats.bad_messages >= 1, "the bad frame")
        call.stream = stream
        await stream.speak(voice)
        await wait_for(
            lambda: sim.session().received_samples >= len(voice), "the voice at the agent"
        )
        assert not stream.closed.is_set()
        await stream.stop()
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 15)
    assert transport.stats.bad_messages == 1


async def test_a_frame_over_the_hard_limit_closes_the_stream_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe item 1: beyond the socket's hard limit (memory safety) the stream closes (1009)
    and the log and the call's end reason say why, not just "the stream closed"."""
    from botrun.core.sim import Simulator
    from botrun.transports.twilio.messages import MAX_FRAME_BYTES

    caplog.set_level(logging.INFO, logger="botrun.serve.twilio")
    async with Simulator() as sim, serve_(monkeypatch, tmp_path, sim.url) as serve:
        tw = serve.twilio
        call, _, twiml = await tw.incoming_call()
        stream = await tw.open_stream(call, twiml)
        await wait_for(lambda: call.sid in serve.calls.active, "the call")
        transport = serve.calls.active[call.sid].transport
        await wait_for(lambda: sim.sessions, "the agent session")
        with contextlib.suppress(ConnectionError):  # (the server may close mid-send)
            await stream.send_raw("x" * (MAX_FRAME_BYTES + 2))
        await asyncio.wait_for(stream.closed.wait(), 30)
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 15)
    assert f"over the hard limit of {MAX_FRAME_BYTES} bytes" in transport.end_reason
    assert f"over the hard limit of {MAX_FRAME_BYTES} bytes" in caplog.text


async def test_media_before_start_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from botrun.core.sim import Simulator

    async with Simulator() as sim, serve_(monkeypatch, tmp_path, sim.url) as serve:
        tw = serve.twilio
        call, _, _ = await tw.incoming_call()
        url = serve.url.replace("http", "ws") + "/twilio/stream"
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url, headers={"X-Twilio-Signature": sign(url, {})})
            with caplog.at_level(logging.WARNING, logger="botrun.serve.twilio"):
                await ws.send_str('{"event": "media", "media": {"payload": "/w=="}}')
                from fake_twilio import MediaStream

                stream = MediaStream(ws, call.sid)
                await stream.begin({})
                await wait_for(lambda: call.sid in serve.calls.active, "the call after start")
            await stream.stop()
            await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 15)
        assert any("before start" in r.getMessage() for r in caplog.records)


async def test_missing_settings_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from botrun.bots.serve.cli import build

    monkeypatch.chdir(tmp_path)
    for name in ("TWILIO_ACCOUNT_SID", "PUBLIC_URL", "DAILY_API_KEY", "TWILIO_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "test-agent-key-0123456789")
    with pytest.raises(ConfigError) as err:
        build("127.0.0.1", 0, None, 1, 60.0, None)
    assert "TWILIO_ACCOUNT_SID, PUBLIC_URL are not set" in str(err.value)
    assert AUTH_TOKEN not in str(err.value)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("PUBLIC_URL", "ftp://example.com")
    with pytest.raises(ConfigError, match="PUBLIC_URL must be an https:// address"):
        build("127.0.0.1", 0, None, 1, 60.0, None)


def test_an_http_public_url_is_allowed_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Fleet-fix item 7: ``PUBLIC_URL=http://...`` was accepted silently (serve then hands
    Twilio a ws:// stream URL, which real Twilio refuses), and the error for a bad one
    said "must be an https:// address" although http is allowed."""
    from botrun.transports.twilio.settings import public_url

    with caplog.at_level(logging.WARNING, logger="botrun.twilio"):
        assert public_url("https://bots.example.com/") == "https://bots.example.com"
        assert caplog.records == []
        assert public_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "not https" in record.getMessage() and "wss://" in record.getMessage()
    with pytest.raises(ConfigError, match=r"\(http:// only for local tests\)"):
        public_url("ftp://example.com")


async def test_rest_errors_carry_twilios_message_not_the_credentials() -> None:
    from fake_twilio import ACCOUNT_SID, FakeTwilio

    from botrun.transports.twilio.rest import TwilioApiError, TwilioRest

    async with FakeTwilio("http://127.0.0.1:9") as tw:
        wrong = TwilioRest(ACCOUNT_SID, "wrong-token-abcdef123456", tw.api_url)
        with pytest.raises(TwilioApiError) as err:
            await wrong.hang_up("CA" + "5" * 32)
        await wrong.close()
        assert "Authenticate" in str(err.value) and "20003" in str(err.value)
        assert "wrong-token-abcdef123456" not in str(err.value)
        right = TwilioRest(ACCOUNT_SID, AUTH_TOKEN, tw.api_url)
        with pytest.raises(TwilioApiError, match="not a valid phone number"):
            await right.create_call("12345", "+15550001111", url="http://x/v", status_callback="")
        with pytest.raises(TwilioApiError, match="HTTP 404"):
            await right.fetch_call("CA" + "6" * 32)
        await right.close()
        unreachable = TwilioRest(ACCOUNT_SID, AUTH_TOKEN, "http://127.0.0.1:9")
        with pytest.raises(TwilioApiError, match="could not reach Twilio"):
            await unreachable.hang_up("CA" + "7" * 32)
        await unreachable.close()


async def test_a_webhook_body_that_never_arrives_gets_408(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve_(monkeypatch, tmp_path, DEAD_AGENT) as serve:
        port = int(serve.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /twilio/voice HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"CallSid=CA"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        assert b" 408 " in status_line
        assert serve.calls.pending == {}


async def test_a_public_serve_for_twilio_alone_needs_no_api_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio's webhooks are signed: on a public address without BOTRUN_API_TOKEN serve
    starts with its API closed (only signed webhooks), as with DAILY_DIALIN_SECRET."""
    from fake_twilio import ACCOUNT_SID

    from botrun.bots.serve.app import SETTINGS
    from botrun.bots.serve.auth import Access
    from botrun.bots.serve.cli import build

    monkeypatch.chdir(tmp_path)
    for name in ("DAILY_API_KEY", "BOTRUN_API_TOKEN", "DAILY_DIALIN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("PUBLIC_URL", "https://bots.example.com")
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "test-agent-key-0123456789")
    app = build("0.0.0.0", 0, None, 1, 60.0, None)
    assert app[SETTINGS].auth.access is Access.CLOSED


@pytest.mark.parametrize("daily", [False, True])
async def test_the_dialin_secret_warning_only_when_dialin_is_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    daily: bool,
) -> None:
    """Fleet-fix item 8: serve for Twilio alone (no DAILY_API_KEY, so no /dialin) warned
    "DAILY_DIALIN_SECRET is not set: /dialin needs the API token"."""
    from fake_twilio import ACCOUNT_SID
    from serve_support import API_TOKEN

    from botrun.bots.serve.cli import build

    monkeypatch.chdir(tmp_path)
    for name in ("DAILY_API_KEY", "DAILY_DIALIN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    if daily:
        monkeypatch.setenv("DAILY_API_KEY", "test-daily-key")
    monkeypatch.setenv("BOTRUN_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("PUBLIC_URL", "https://bots.example.com")
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "test-agent-key-0123456789")
    with caplog.at_level(logging.WARNING, logger="botrun.serve"):
        build("127.0.0.1", 0, None, 1, 60.0, None)
    warned = any("DAILY_DIALIN_SECRET" in r.getMessage() for r in caplog.records)
    assert warned is daily, [r.getMessage() for r in caplog.records]
