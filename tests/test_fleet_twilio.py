"""Twilio calls through the fleet (issues 17 + 20) against a real redis-server: the fake
Twilio's signed voice webhook reaches the front door (``serve --queue``), which queues a
``twilio`` job and answers TwiML naming the stream of the ``botrun worker`` process that
took it; the fake Twilio then opens that worker's Media Stream and talks in real time to a
bot whose agent is the local simulator."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, sign
from fleet_support import (
    WorkerProcess,
    free_port,
    redis_server,
    start_worker,
    stop_worker,
    wait_state,
    wait_until,
)
from serve_support import API_TOKEN, AUTH_HEADER
from speech import assert_found_in_order
from twilio_support import as_pcm, ulaw_speech, write_config

from botrun.bots.fleet.frontdoor import QueueSettings, create_app
from botrun.bots.fleet.redis import connect
from botrun.bots.fleet.twilio_door import TwilioDoor, session_id_for
from botrun.bots.serve.app import ServeSettings
from botrun.bots.serve.auth import Access, ApiAuth

pytest.importorskip("twilio")

BLOCK = 1600  # 200 ms at 8 kHz


@asynccontextmanager
async def twilio_front_door(
    queue_url: str, *, queue_wait_s: float | None
) -> AsyncIterator[TestClient]:
    """``serve --queue``'s app with Twilio on, on the loopback port its PUBLIC_URL names;
    ``queue_wait_s`` for every call, Twilio's too (None: serve's defaults)."""
    from botrun.transports.twilio.settings import TwilioSettings
    from botrun.transports.twilio.signature import Validator

    port = free_port()
    public = f"http://127.0.0.1:{port}"
    redis = await connect(queue_url)
    settings = ServeSettings(dialin_key=None, auth=ApiAuth(Access.TOKEN, API_TOKEN))
    queue = (
        QueueSettings(queue_url=queue_url)
        if queue_wait_s is None
        else QueueSettings(
            queue_url=queue_url, queue_wait_s=queue_wait_s, twilio_queue_wait_s=queue_wait_s
        )
    )
    door = TwilioDoor(TwilioSettings(ACCOUNT_SID, AUTH_TOKEN, public), Validator(AUTH_TOKEN))
    door.api_token = API_TOKEN
    client = TestClient(
        TestServer(create_app(settings, queue, redis, door), host="127.0.0.1", port=port),
        headers=AUTH_HEADER,
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def twilio_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, config: Path, tw: FakeTwilio
) -> tuple[WorkerProcess, str]:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    for name, value in {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_URL": tw.api_url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    worker = await start_worker(
        tmp_path,
        "tw",
        redis_url,
        config,
        capacity=1,
        warm=0,
        extra=("--transport", "twilio", "--public-url", public, "--port", str(port)),
    )
    return worker, public


def stream_url(twiml: str) -> str:
    el = ET.fromstring(twiml).find("./Connect/Stream")
    assert el is not None, twiml
    return el.attrib["url"]


async def test_a_phone_call_through_the_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.core.sim import Simulator

    caller_voice = ulaw_speech(
        "I would like to talk about my order, it has not arrived yet.", tmp_path / "a.wav"
    )
    async with redis_server(tmp_path) as redis, Simulator() as sim:
        config = write_config(tmp_path / "bot.toml", sim.url)
        async with twilio_front_door(redis.url, queue_wait_s=5.0) as door:
            front = str(door.make_url("")).rstrip("/")
            async with FakeTwilio(front) as tw:
                worker, worker_url = await twilio_worker(
                    tmp_path, monkeypatch, redis.url, config, tw
                )
                try:
                    await worker.ready()
                    # Unsigned webhooks start nothing.
                    code, _ = await tw.post(front + "/twilio/voice", {"CallSid": "CAx"}, None)
                    assert code == 403
                    call, status, twiml = await tw.incoming_call(from_="+15557654321")
                    assert status == 200 and "<Connect><Stream" in twiml, twiml
                    # The stream is the worker's, not the front door's.
                    assert stream_url(twiml) == worker_url.replace("http", "ws") + "/twilio/stream"
                    assert 'name="from" value="+15557654321"' in twiml
                    sid = session_id_for(call.sid)
                    # The worker checks the stream's signature too (its own public URL).
                    for bad in (None, sign("ws://elsewhere/twilio/stream", {})):
                        with pytest.raises(WSServerHandshakeError) as refused:
                            await tw.open_stream(call, twiml, signature=bad)
                        assert refused.value.status == 403
                    stream = await tw.open_stream(call, twiml)
                    await wait_until(lambda: len(stream.received) >= 8000, "the greeting")
                    await wait_until(
                        lambda: sim.sessions and sim.session().replies, "the greeting's reply"
                    )
                    await wait_until(
                        lambda: sim.session().replies[-1].status != "in_progress",
                        "the greeting's end",
                    )
                    running = await wait_state(door, sid, ("running",))
                    # Twilio retries the webhook: the same answer, nothing new started.
                    again = await tw.post(front + "/twilio/voice", tw._voice_params(call))
                    assert again == (200, twiml)
                    await stream.speak(caller_voice)
                    n0 = len(stream.received)
                    await wait_until(lambda: len(stream.received) >= n0 + 8000, "the reply")
                    # The caller hangs up: Twilio's status callback reaches the front door,
                    # which relays it to the worker running the call: the call ends.
                    params = {**tw._voice_params(call), "CallStatus": "completed"}
                    # the worker's relay endpoint is the front door's only: it needs the token
                    async with ClientSession() as http:
                        relay = worker_url + "/twilio/relay"
                        async with http.post(relay, json=params) as r:
                            assert r.status == 401
                        async with http.post(relay, data=b"{", headers=AUTH_HEADER) as r:
                            assert r.status == 400
                    code, _ = await tw.post(front + "/twilio/status", params)
                    assert code == 204
                    ended = await wait_state(door, sid, ("ended", "failed"), 30)
                    late = await tw.post(front + "/twilio/voice", tw._voice_params(call))
                    await stream.close()
                finally:
                    await stop_worker(worker)
        sessions = list(sim.sessions.values())
        received = sim.session().received_audio
    log = worker.text()
    assert running["worker"] == ended["worker"]
    assert ended["state"] == "ended", (ended, log)
    # the start (webhook received -> stream running on the worker) is recorded
    assert ended["ready_at"] >= ended["created_at"]
    # the relayed status reached the call on its worker, and ended it
    assert f"call {call.sid} ended: call completed; statuses: completed" in log, log
    # one call, one agent session: neither retry started anything
    assert len(sessions) == 1
    assert late[0] == 200 and "<Hangup" in late[1] and "<Stream" not in late[1]
    # The caller's words reached the agent intact (μ-law passed through), and the bot's
    # reply came back to Twilio.
    import numpy as np

    caller = as_pcm(caller_voice)
    assert_found_in_order(caller, np.frombuffer(received, dtype="<i2"), block=BLOCK, min_corr=0.99)
    assert_found_in_order(caller[:8000], as_pcm(bytes(stream.received)), block=BLOCK, min_corr=0.9)


async def test_a_full_worker_means_busy_twiml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.core.sim import Simulator

    async with redis_server(tmp_path) as redis, Simulator() as sim:
        config = write_config(tmp_path / "bot.toml", sim.url)
        async with twilio_front_door(redis.url, queue_wait_s=2.0) as door:
            front = str(door.make_url("")).rstrip("/")
            async with FakeTwilio(front) as tw:
                worker, _ = await twilio_worker(tmp_path, monkeypatch, redis.url, config, tw)
                try:
                    await worker.ready()
                    first, _, twiml = await tw.incoming_call()
                    assert "<Stream" in twiml, twiml
                    stream = await tw.open_stream(first, twiml)
                    await wait_state(door, session_id_for(first.sid), ("running",))
                    # capacity 1, taken: the next caller is told the lines are busy
                    second, status, busy = await tw.incoming_call(from_="+15550009999")
                    refused = await wait_state(door, session_id_for(second.sid), ("failed",), 30)
                    await stream.stop()
                    done = await wait_state(door, session_id_for(first.sid), ("ended", "failed"))
                finally:
                    await stop_worker(worker)
    assert status == 200
    assert "<Say>" in busy and "<Hangup" in busy and "<Stream" not in busy, busy
    assert "queue wait" in refused.get("error", ""), refused
    assert done["state"] == "ended", (done, worker.text())
    assert len(sim.sessions) == 1  # the refused call never reached the agent


async def test_an_outbound_call_through_the_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``botrun call`` with PUBLIC_URL at the front door: the statuses before the answer wait
    in Redis and go with the job, the later ones are relayed, ``completed`` ends the call."""
    import io

    from fake_twilio import FROM_NUMBER, FakeCall

    from botrun.bots.call import place
    from botrun.core.sim import Simulator

    voice = ulaw_speech("Hello, this is Sam speaking, who is calling please?", tmp_path / "v.wav")
    async with redis_server(tmp_path) as redis, Simulator() as sim:
        config = write_config(tmp_path / "bot.toml", sim.url)
        async with twilio_front_door(redis.url, queue_wait_s=5.0) as door:
            front = str(door.make_url("")).rstrip("/")
            async with FakeTwilio(front) as tw:
                worker, _ = await twilio_worker(tmp_path, monkeypatch, redis.url, config, tw)
                monkeypatch.setenv("PUBLIC_URL", front)  # `botrun call`'s: the front door
                monkeypatch.setenv("TWILIO_FROM_NUMBER", FROM_NUMBER)
                answered: list[FakeCall] = []

                async def callee(call: FakeCall) -> None:
                    answered.append(call)
                    assert call.stream is not None
                    await call.stream.speak(voice)
                    n = len(call.stream.received)
                    await wait_until(lambda: len(call.stream.received) >= n + 8000, "a reply")
                    await tw.post_status(call, "completed")  # the stream is left open

                tw.on_answer = callee
                try:
                    await worker.ready()
                    code = await asyncio.wait_for(
                        place("+15557770000", None, None, True, None, 30, out=io.StringIO()),
                        timeout=60,
                    )
                    call = answered[0]
                    assert call.stream is not None
                    await asyncio.wait_for(call.stream.closed.wait(), 15)  # the worker closed it
                    record = await wait_state(door, session_id_for(call.sid), ("ended", "failed"))
                finally:
                    await stop_worker(worker)
    log = worker.text()
    assert code == 0
    assert record["state"] == "ended", (record, log)
    assert [c for c in call.callbacks if c[1] != 204] == []
    expected = f"call {call.sid} ended: call completed; statuses: initiated, ringing, in-progress"
    assert expected + ", completed;" in log, log
    assert len(sim.sessions) == 1


@pytest.mark.parametrize(
    ("args", "env_extra", "message"),
    [
        (
            ("--transport", "twilio"),
            {"TWILIO_AUTH_TOKEN": AUTH_TOKEN},
            "--public-url or PUBLIC_URL",
        ),
        (
            ("--transport", "twilio", "--public-url", "https://w.example.com"),
            {},
            "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN are not set",
        ),
        (
            ("--transport", "twilio", "--public-url", "ftp://w"),
            {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT_SID},
            "PUBLIC_URL must be an https:// address",
        ),
    ],
)
def test_twilio_worker_usage_errors_are_one_line(
    tmp_path: Path, args: tuple[str, ...], env_extra: dict[str, str], message: str
) -> None:
    import subprocess
    import sys

    from fleet_support import botrun_env

    env = botrun_env(**env_extra)
    for name in ("PUBLIC_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        if name not in env_extra:
            env.pop(name, None)
    config = write_config(tmp_path / "bot.toml", "ws://127.0.0.1:1/agent")
    queue = ("--queue", "redis://127.0.0.1:1/0", "--config", str(config))
    done = subprocess.run(
        [sys.executable, "-m", "botrun.bots.cli", "worker", *queue, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,  # no .env here
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and message in done.stderr.strip().splitlines()[-1]


async def test_a_webhook_to_two_front_doors_at_once_makes_one_call_and_delete_reaches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio's retry reaching another front door while the first still waits for a worker:
    both answer the same TwiML, one job, one agent session. ``DELETE /sessions/ID`` on
    either front door stops the call on its worker (the stream is closed)."""
    from fake_twilio import FakeCall

    from botrun.core.sim import Simulator

    async with redis_server(tmp_path) as redis, Simulator() as sim:
        config = write_config(tmp_path / "bot.toml", sim.url)
        async with (
            twilio_front_door(redis.url, queue_wait_s=10.0) as door_a,
            twilio_front_door(redis.url, queue_wait_s=10.0) as door_b,
        ):
            front_a = str(door_a.make_url("")).rstrip("/")
            front_b = str(door_b.make_url("")).rstrip("/")
            async with FakeTwilio(front_a) as tw:
                worker, _ = await twilio_worker(tmp_path, monkeypatch, redis.url, config, tw)
                try:
                    await worker.ready()
                    retry = "CA" + "2" * 32
                    call = FakeCall(retry, "+15550001111", "+15557654321", "inbound", "ringing")
                    tw.calls[retry] = call
                    params = tw._voice_params(call)
                    (code_a, twiml_a), (code_b, twiml_b) = await asyncio.gather(
                        tw.post(front_a + "/twilio/voice", params),
                        tw.post(front_b + "/twilio/voice", params),
                    )
                    stream = await tw.open_stream(call, twiml_a)
                    sid = session_id_for(retry)
                    await wait_state(door_a, sid, ("running",))
                    await wait_until(lambda: sim.sessions, "the agent session")
                    resp = await door_b.delete(f"/sessions/{sid}")
                    assert resp.status == 202, await resp.text()
                    await asyncio.wait_for(stream.closed.wait(), 30)
                    stopped = await wait_state(door_a, sid, ("stopped", "ended", "failed"), 30)
                finally:
                    await stop_worker(worker)
    log = worker.text()
    assert code_a == code_b == 200
    assert twiml_a == twiml_b and "<Stream" in twiml_a, (twiml_a, twiml_b)
    assert log.count(f"call {retry}: taken") == 1, log
    assert len(sim.sessions) == 1
    assert stopped["state"] == "stopped", (stopped, log)


async def test_a_twilio_call_waits_for_a_worker_less_than_twilio_waits_for_its_answer(
    tmp_path: Path,
) -> None:
    """Twilio gives up on its voice webhook after 15 s: by default a Twilio call waits for a
    worker at most --twilio-queue-wait-s (10 s), while a Daily dial-in call keeps
    --queue-wait-s (30 s). Before, both waited 30 s and serve only warned."""
    import uuid

    from arq.constants import job_key_prefix

    from botrun.bots.fleet import store, twilio_claims
    from botrun.bots.fleet.frontdoor import REDIS
    from botrun.bots.fleet.jobs import session_id_for_call

    async with (
        redis_server(tmp_path) as redis,
        twilio_front_door(redis.url, queue_wait_s=None) as door,
    ):
        front = str(door.make_url("")).rstrip("/")
        call_sid = "CA" + uuid.uuid4().hex
        sid = session_id_for(call_sid)
        arq_redis = door.app[REDIS]

        async def stand_in_worker() -> float:
            """Takes the call's job once it is queued, as a worker would; returns the job's
            time to live in Redis (arq's expiry) at that moment."""
            await wait_until(lambda: store.get_call(arq_redis, sid), "the call queued")
            ttl_ms = await arq_redis.pttl(job_key_prefix + sid)
            await twilio_claims.claim(arq_redis, sid, "https://worker.example.com")
            return ttl_ms / 1000

        async with FakeTwilio(front) as tw:
            worker = asyncio.create_task(stand_in_worker())
            _, status, twiml = await tw.incoming_call(sid=call_sid)
            twilio_ttl_s = await worker
        dialin = await door.post("/dialin", json={"callId": "call-1", "callDomain": "d"})
        twilio_record = await store.get_call(arq_redis, sid)
        dialin_record = await store.get_call(arq_redis, session_id_for_call("call-1"))

    assert status == 200 and "wss://worker.example.com/twilio/stream" in twiml, twiml
    assert dialin.status == 200
    assert twilio_record is not None and dialin_record is not None

    def wait_of(record: dict) -> float:
        return float(record["expires_at"]) - float(record["created_at"])

    assert wait_of(twilio_record) == pytest.approx(10.0, abs=0.01)  # Twilio waits 15 s
    assert 0 < twilio_ttl_s <= 10.0  # the job itself expires then too
    assert wait_of(dialin_record) == pytest.approx(30.0, abs=0.01)


async def test_a_retried_webhook_of_a_call_told_busy_is_told_busy_again_and_logged_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fleet-fix item 8: Twilio's retry of a webhook answered busy was queued again and
    logged "queued; 1 waiting before it" (its own expired job), then told busy."""
    import logging
    import uuid

    from arq.constants import job_key_prefix

    from botrun.bots.fleet.frontdoor import REDIS

    async with (
        redis_server(tmp_path) as redis,
        twilio_front_door(redis.url, queue_wait_s=0.5) as door,
    ):
        front = str(door.make_url("")).rstrip("/")
        call_sid = "CA" + uuid.uuid4().hex
        sid = session_id_for(call_sid)
        arq_redis = door.app[REDIS]
        async with FakeTwilio(front) as tw:
            _, _, first = await tw.incoming_call(sid=call_sid)  # no worker: busy
            # Twilio retries later: the call's job has expired by then
            await wait_until(
                lambda: _gone(arq_redis, job_key_prefix + sid), "the job to expire", 30
            )
            with caplog.at_level(logging.INFO, logger="botrun.serve"):
                _, status, again = await tw.incoming_call(sid=call_sid)
    said = [r.getMessage() for r in caplog.records]
    assert "<Hangup" in first and "<Stream" not in first, first
    assert status == 200 and again == first, again
    assert not any("waiting before it" in line for line in said), said
    assert any(
        f"call {call_sid}: webhook retried; it was told busy, so it is again" in x for x in said
    ), said


async def _gone(redis: Any, key: str) -> bool:
    return not await redis.exists(key)


@pytest.mark.parametrize(("wait_s", "warned"), [(10.0, False), (15.0, True)])
def test_serve_warns_only_when_twilio_calls_may_wait_as_long_as_twilio_does(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    wait_s: float,
    warned: bool,
) -> None:
    import logging

    from botrun.bots.fleet import serve_queue

    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("PUBLIC_URL", "https://calls.example.com")
    monkeypatch.setenv("BOTRUN_API_TOKEN", API_TOKEN)
    with caplog.at_level(logging.WARNING, logger="botrun.serve"):
        _, queue, door = serve_queue.check(
            "127.0.0.1",
            "redis://127.0.0.1:6379/0",
            insecure=False,
            read_timeout_s=10.0,
            queue_wait_s=30.0,
            max_queued=100,
            call_transports=(),
            twilio_queue_wait_s=wait_s,
        )
    assert door is not None
    assert queue.wait_for("twilio") == wait_s and queue.wait_for("daily") == 30.0
    assert ("--twilio-queue-wait-s" in caplog.text) is warned
    assert "--queue-wait-s 30" not in caplog.text  # Daily's calls may wait longer


async def test_the_front_door_refuses_twilio_webhooks_as_serve_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One reader of Twilio's signed forms (bots/serve/twilio_routes.signed_form) for serve
    and the front door: 403 unsigned (logged), 400 without a CallSid, nothing queued."""
    import logging

    from botrun.bots.fleet import jobs
    from botrun.bots.fleet.frontdoor import REDIS

    async with (
        redis_server(tmp_path) as redis,
        twilio_front_door(redis.url, queue_wait_s=2.0) as door,
    ):
        front = str(door.make_url("")).rstrip("/")
        url = front + "/twilio/voice"
        async with FakeTwilio(front) as tw:
            with caplog.at_level(logging.WARNING, logger="botrun.serve.net"):
                unsigned, _ = await tw.post(url, {"CallSid": "CAx"}, None)
            no_sid, body = await tw.post(
                url, {"From": "+15550001111"}, sign(url, {"From": "+15550001111"})
            )
        queued = await door.app[REDIS].zcard(jobs.QUEUE_NAME)
    assert unsigned == 403
    assert "refused (403): missing or wrong X-Twilio-Signature" in caplog.text
    assert (no_sid, body) == (400, "CallSid missing")
    assert queued == 0
