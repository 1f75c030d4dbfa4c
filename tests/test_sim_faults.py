"""Conformance: auth, temporary tokens, resume, expiry and every injectable fault."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from botrun.core.sim import Simulator
from botrun.core.sim.faults import UNKNOWN_EVENT_TYPE
from botrun.core.sim.scenario import FaultSettings, Scenario, SessionSettings
from tests.sim_support import RawClient, silence, utterance

KEY = "sk_sim_test_key_123456"


def faulty(**faults: object) -> Scenario:
    return Scenario(faults=FaultSettings(**faults))


# ---- auth and tokens ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY}]
)
async def test_missing_or_wrong_key_is_unauthorized_1008(headers: dict) -> None:
    async with Simulator(api_key=KEY, speed=8) as sim:
        c = await RawClient.connect(sim.url, additional_headers=headers)
        err = await c.wait("session.error")
        assert err["code"] == "UNAUTHORIZED"
        assert await c.wait_closed() == 1008
        assert not sim.sessions


async def test_bearer_key_accepted() -> None:
    async with Simulator(api_key=KEY, speed=8) as sim:
        c = await RawClient.connect(sim.url, additional_headers={"Authorization": f"Bearer {KEY}"})
        assert await c.start()
        await c.close()


async def test_temporary_token_single_use_and_session_limit() -> None:
    async with Simulator(api_key=KEY, speed=8) as sim:
        http_url = sim.url.replace("ws://", "http://") + "/v1/token"
        async with aiohttp.ClientSession() as http:
            async with http.get(http_url, params={"expires_in_seconds": 60}) as r:
                assert r.status == 401
            auth = {"Authorization": f"Bearer {KEY}"}
            async with http.get(http_url, params={"expires_in_seconds": 900}, headers=auth) as r:
                assert r.status == 400
            async with http.get(
                http_url,
                headers=auth,
                params={"expires_in_seconds": 60, "max_session_duration_seconds": 120},
            ) as r:
                assert r.status == 200 and r.content_type == "application/json"
                token = (await r.json())["token"]
        c = await RawClient.connect(f"{sim.url}/v1/ws?token={token}")
        await c.start()
        assert sim.session().max_duration_s == 120
        await c.close()
        again = await RawClient.connect(f"{sim.url}/v1/ws?token={token}")  # single use
        assert (await again.wait("session.error"))["code"] == "UNAUTHORIZED"
        assert await again.wait_closed() == 1008


async def test_expired_token_refused() -> None:
    async with Simulator(api_key=KEY, speed=8) as sim:
        token = sim.mint_token(expires_in_s=0.05)
        await asyncio.sleep(0.1)
        c = await RawClient.connect(f"{sim.url}?token={token}")
        assert (await c.wait("session.error"))["code"] == "UNAUTHORIZED"


async def test_plain_http_to_websocket_path_is_refused_cleanly(sim: Simulator) -> None:
    url = sim.url.replace("ws://", "http://") + "/v1/ws"
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 426  # upgrade required; the server keeps running
    c = await RawClient.connect(sim.url)
    assert await c.start()
    await c.close()


# ---- connect-time errors -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "close"), [("server_error", 1013), ("FORBIDDEN", 1008), ("internal_error", 1011)]
)
async def test_first_k_connections_refused(code: str, close: int) -> None:
    async with Simulator(faulty(connect_error=code, connect_error_count=2), speed=8) as sim:
        for _ in range(2):
            c = await RawClient.connect(sim.url)
            assert (await c.wait("session.error"))["code"] == code
            assert await c.wait_closed() == close
        c = await RawClient.connect(sim.url)
        assert await c.start()
        assert [e["code"] for e in sim.connection_errors] == [code, code]
        await c.close()


# ---- resume ------------------------------------------------------------------------------
async def test_resume_within_window_keeps_session_and_recording(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    sid = await c.start(greeting="This greeting is lost when the socket drops mid reply.")
    await c.wait("reply.audio")
    await c.send_audio(silence(100))
    c.ws.transport.abort()
    await c.wait_closed()
    c2 = await RawClient.connect(sim.url)
    await c2.send("session.resume", session_id=sid)
    assert (await c2.wait("session.ready"))["session_id"] == sid
    await c2.send_audio(silence(100))
    await c2.send("session.end")
    await c2.wait("session.ended")
    s = sim.sessions[sid]
    assert s.received_samples == 4800 and s.connections == 2
    assert s.replies[0].status == "lost"
    assert "session.updated" not in c2.types()  # a resume answers session.ready only
    assert "reply.started" not in c2.types()  # the greeting is not spoken again


async def test_resume_after_window_is_session_not_found_in_band() -> None:
    async with Simulator(speed=8, resume_window_s=0.1) as sim:
        c = await RawClient.connect(sim.url)
        sid = await c.start()
        await c.close()
        await asyncio.sleep(0.2)
        c2 = await RawClient.connect(sim.url)
        await c2.send("session.resume", session_id=sid)
        err = await c2.wait("session.error")
        assert (err["code"], err["param"]) == ("session_not_found", "session_id")
        new_sid = await c2.start()  # same socket, fresh session
        assert new_sid != sid
        await c2.close()


async def test_session_not_found_close_variant_and_refuse_resume() -> None:
    async with Simulator(faulty(session_not_found="close", refuse_resume=True), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        sid = await c.start()
        c.ws.transport.abort()
        c2 = await RawClient.connect(sim.url)
        await c2.send("session.resume", session_id=sid)
        assert (await c2.wait("session.error"))["code"] == "session_not_found"
        assert await c2.wait_closed() == 1008


async def test_resume_of_unknown_id(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.send("session.resume", session_id="sess_doesnotexist")
    assert (await c.wait("session.error"))["code"] == "session_not_found"
    await c.close()


async def test_resume_while_old_socket_still_open_takes_over(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    sid = await c.start()
    c2 = await RawClient.connect(sim.url)
    await c2.send("session.resume", session_id=sid)
    await c2.wait("session.ready")
    assert await c.wait_closed() in (1006, None)
    await c2.send_audio(silence(50))
    await c2.send("session.end")
    await c2.wait("session.ended")
    assert sim.sessions[sid].received_samples == 1200


# ---- expiry and delays -------------------------------------------------------------------
async def test_max_session_duration_expires() -> None:
    scenario = Scenario(session=SessionSettings(max_duration_s=0.2))
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        sid = await c.start()
        assert (await c.wait("session.error"))["code"] == "session_expired"
        assert await c.wait_closed() == 1000
        c2 = await RawClient.connect(sim.url)
        await c2.send("session.resume", session_id=sid)
        assert (await c2.wait("session.error"))["code"] == "session_forbidden"
        await c2.close()


# ---- mid-session faults ------------------------------------------------------------------
async def test_drop_at_nth_reply_audio_once_per_session() -> None:
    async with Simulator(faulty(drop_at_reply_audio=3), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        sid = await c.start(greeting="A greeting that is long enough for several frames.")
        assert await c.wait_closed() == 1006  # no close frame: an abrupt drop
        assert c.types().count("reply.audio") == 3
        c2 = await RawClient.connect(sim.url)
        await c2.send("session.resume", session_id=sid)
        await c2.wait("session.ready")
        await c2.send("reply.create", instructions="Still here after the drop.")
        assert (await c2.wait("reply.done"))["status"] == "completed"  # no second drop
        await c2.close()


async def test_drop_after_seconds() -> None:
    async with Simulator(faulty(drop_after_s=0.1), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start()
        assert await c.wait_closed() == 1006
        assert sim.session().detached_at is not None


@pytest.mark.parametrize("at", [0, 2])
async def test_injected_junk_frames(at: int) -> None:
    kinds = ("malformed_json", "binary_frame", "unknown_event", "oversized_message")
    scenario = faulty(inject=kinds, inject_at_reply_audio=at, oversized_bytes=2_000_000)
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(greeting="Hello there, this is a greeting.")
        await c.wait("reply.done")
        types = c.types()
        junk = ["<malformed>", "<binary>", UNKNOWN_EVENT_TYPE, "sim.padding"]
        i = types.index("<malformed>")
        assert types[i : i + 4] == junk
        assert types[:i].count("reply.audio") == at
        padding = c.of_type("sim.padding")[0]
        assert len(json.dumps(padding)) >= 1_999_000
        await c.close()


async def test_default_size_client_is_closed_by_oversized_message() -> None:
    async with Simulator(faulty(inject=("oversized_message",)), speed=8) as sim:
        c = await RawClient.connect(sim.url, max_size=2**20)  # websockets' default limit
        await c.send("session.update", session={})
        await c.wait_closed()
        assert c.close_sent_code == 1009  # the client refused the frame: message too big
        assert sim.session().detached_at is not None


async def test_ready_delay_keeps_audio_out() -> None:
    async with Simulator(faulty(ready_delay_s=0.2), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.send("session.update", session={})
        await c.send_audio(utterance(100, 0, 0))
        await c.wait("session.ready")
        assert c.types()[0] == "session.error"
        await c.close()


async def test_handshake_rejection_does_not_stop_server(sim: Simulator) -> None:
    import websockets

    with pytest.raises(InvalidStatus):
        async with websockets.connect(sim.url + "/v1/token"):
            pass
    c = await RawClient.connect(sim.url)
    assert await c.start()
    await c.close()
