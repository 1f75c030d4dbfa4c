"""The call fleet (issue 20) against a real redis-server: ``botrun worker`` processes taking
WAV calls (the stand-in call) through the front door, each call a real bot process talking
to a local simulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession
from fleet_support import (
    CountingSimulator,
    botrun_env,
    call_state,
    free_port,
    front_door,
    redis_server,
    start_wav,
    start_worker,
    stop_worker,
    wait_state,
    wait_until,
    write_config,
    write_wav,
)
from serve_support import API_TOKEN, AUTH_HEADER, DIALIN_KEY, DIALIN_SECRET

from botrun.bots.fleet import jobs
from botrun.bots.fleet.frontdoor import REDIS
from botrun.bots.serve import webhook


async def test_two_workers_of_capacity_two_run_ten_calls_never_more_than_two_each(
    tmp_path: Path,
) -> None:
    wav = write_wav(tmp_path / "in.wav", 2.0)
    async with (
        redis_server(tmp_path) as redis,
        CountingSimulator() as sim_a,
        CountingSimulator() as sim_b,
    ):
        workers = [
            await start_worker(
                tmp_path, "a", redis.url, write_config(tmp_path / "a.toml", sim_a.url)
            ),
            await start_worker(
                tmp_path, "b", redis.url, write_config(tmp_path / "b.toml", sim_b.url)
            ),
        ]
        try:
            for w in workers:
                await w.ready()
            async with front_door(redis.url) as client:
                started = [
                    await start_wav(client, wav, tmp_path / f"out-{i}.wav") for i in range(10)
                ]
                records = [
                    await wait_state(client, s["session_id"], ("ended", "failed"), 120)
                    for s in started
                ]
        finally:
            for w in workers:
                await stop_worker(w)
    assert [r["state"] for r in records] == ["ended"] * 10, records
    assert sim_a.total + sim_b.total == 10
    assert sim_a.most <= 2 and sim_b.most <= 2, (sim_a.most, sim_b.most)
    assert sim_a.total > 0 and sim_b.total > 0  # both workers took calls
    sessions = [*sim_a.sessions.values(), *sim_b.sessions.values()]
    assert len(sessions) == 10
    # every call ran through: audio reached the agent and the session was ended cleanly
    assert all(s.ended and s.audio_duration_s() > 0.5 for s in sessions)
    assert all(r["exit_code"] == 0 for r in records)


async def test_sigterm_drains_a_call_in_progress_and_takes_no_new_one(tmp_path: Path) -> None:
    long = write_wav(tmp_path / "long.wav", 6.0)
    short = write_wav(tmp_path / "short.wav", 1.0)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        config = write_config(tmp_path / "w.toml", sim.url)
        first = await start_worker(tmp_path, "a", redis.url, config, capacity=2)
        second = None
        try:
            await first.ready()
            async with front_door(redis.url) as client:
                call = await start_wav(client, long, tmp_path / "o1.wav")
                await wait_until(lambda: sim.connected == 1, "the call to reach the agent")
                first.signal(signal.SIGTERM)
                await wait_until(lambda: "draining" in first.text(), "the worker to drain")
                later = await start_wav(client, short, tmp_path / "o2.wav")
                code = await first.wait(60)
                record = await call_state(client, call["session_id"])
                waiting = await call_state(client, later["session_id"])
                # a job that had not started runs on another worker
                second = await start_worker(tmp_path, "b", redis.url, config, capacity=1)
                await second.ready()
                done = await wait_state(client, later["session_id"], ("ended", "failed"))
        finally:
            for w in (first, second):
                if w is not None:
                    await stop_worker(w)
    assert code == 0, first.text()
    assert record["state"] == "ended" and record["exit_code"] == 0, record  # not cut
    first_session = next(iter(sim.sessions.values()))
    assert first_session.ended and first_session.audio_duration_s() > 4.0
    assert waiting["state"] == "queued"  # the draining worker did not take it
    assert done["state"] == "ended" and done["worker"] != record["worker"]


async def test_sigkill_reports_the_call_failed_frees_it_and_the_queue_moves_on(
    tmp_path: Path,
) -> None:
    long = write_wav(tmp_path / "long.wav", 30.0)
    short = write_wav(tmp_path / "short.wav", 1.0)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        config = write_config(tmp_path / "w.toml", sim.url)
        doomed = await start_worker(tmp_path, "a", redis.url, config, capacity=1)
        other = None
        try:
            await doomed.ready()
            async with front_door(redis.url) as client:
                call = await start_wav(client, long, tmp_path / "o1.wav")
                running = await wait_state(client, call["session_id"], ("running",))
                await wait_until(lambda: sim.connected == 1, "the call to reach the agent")
                waiting = await start_wav(client, short, tmp_path / "o2.wav")
                listed = await (await client.get("/sessions")).json()
                doomed.signal(signal.SIGKILL)
                await doomed.wait(10)
                # its bot notices (its stdin closes) and leaves the call
                await wait_until(lambda: not pid_alive(running["pid"]), "the orphan bot to exit")
                other = await start_worker(tmp_path, "b", redis.url, config, capacity=1)
                await other.ready()
                lost = await wait_state(client, call["session_id"], ("failed",), 30)
                done = await wait_state(client, waiting["session_id"], ("ended", "failed"))
                after = await (await client.get("/sessions")).json()
                job = await client.app[REDIS].exists(
                    "arq:in-progress:" + call["session_id"], "arq:job:" + call["session_id"]
                )
        finally:
            for w in (doomed, other):
                if w is not None:
                    await stop_worker(w)
    by_id = {s["id"]: s for s in listed["sessions"]}
    assert by_id[call["session_id"]]["state"] == "running"
    assert by_id[call["session_id"]]["worker_url"].startswith("http://127.0.0.1:")
    assert by_id[waiting["session_id"]]["state"] == "queued"
    assert "was lost" in lost["error"] and lost["worker"] == running["worker"]
    assert done["state"] == "ended" and done["worker"] != running["worker"]
    assert after["sessions"] == [] and job == 0  # slot and job freed, nothing left running
    assert next(iter(sim.sessions.values())).ended  # the orphan ended its agent session


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_duplicate_webhook_on_any_front_door_starts_nothing(tmp_path: Path) -> None:
    body = json.dumps(
        {"To": "+15550001111", "From": "+15552223333", "callId": "call-9", "callDomain": "d"}
    ).encode()

    def signed() -> dict[str, str]:
        ts = str(int(time.time()))
        return {
            "Content-Type": "application/json",
            webhook.SIGNATURE_HEADER: webhook.sign(DIALIN_KEY, ts, body),
            webhook.TIMESTAMP_HEADER: ts,
        }

    async with (
        redis_server(tmp_path) as redis,
        front_door(redis.url) as one,
        front_door(redis.url) as two,
    ):
        first = await one.post("/dialin", data=body, headers=signed())
        info = await first.json()
        dups = []
        for door in (two, one):  # Daily's retries, to the other front door and this one
            resp = await door.post("/dialin", data=body, headers=signed())
            dups.append((resp.status, await resp.json()))
        queued = await one.app[REDIS].zcard(jobs.QUEUE_NAME)
        listed = await (await two.get("/sessions")).json()
        metrics = await (await one.get("/metrics")).text()
    assert first.status == 200, info
    assert info["queued"] is True
    for status, dup in dups:
        assert status == 200
        assert dup == {"duplicate": True, "session_id": info["session_id"], "state": "queued"}
    assert queued == 1  # one job for the call, whichever front door Daily reached
    (session,) = listed["sessions"]
    assert session["call_id"] == "call-9" and session["transport"] == "daily"
    assert 'botrun_frontdoor_calls_total{result="duplicate"} 1.0' in metrics  # this door's
    assert "botrun_queue_depth 1.0" in metrics


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botrun.bots.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or botrun_env(),
    )


def test_redis_unavailable_at_start_is_one_clear_line(tmp_path: Path) -> None:
    url = f"redis://:secretpw@127.0.0.1:{free_port()}/0"  # nothing listens there
    worker = run_cli("worker", "--queue", url, "--transport", "wav", "--files", str(tmp_path))
    serve = run_cli("serve", "--queue", url, "--port", "0")
    for done in (worker, serve):
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("botrun: error: cannot reach Redis at redis://127.0.0.1:")
        assert "secretpw" not in done.stderr


async def test_redis_lost_mid_call_the_call_goes_on_new_calls_refused_then_recovered(
    tmp_path: Path,
) -> None:
    long = write_wav(tmp_path / "long.wav", 8.0)
    short = write_wav(tmp_path / "short.wav", 1.0)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        worker = await start_worker(
            tmp_path, "a", redis.url, write_config(tmp_path / "w.toml", sim.url)
        )
        try:
            await worker.ready()
            async with front_door(redis.url) as client:
                call = await start_wav(client, long, tmp_path / "o1.wav")
                await wait_until(lambda: sim.connected == 1, "the call to reach the agent")
                redis.stop()  # Redis lost (and it comes back empty: no persistence)
                refused = await client.post(
                    "/start",
                    json={"transport": "wav", "options": {"input": [short.name]}},
                )
                refusal = await refused.json()
                health = await client.get("/health")
                listing = await client.get("/sessions")
                listed = await listing.json()
                record = await client.get(f"/sessions/{call['session_id']}")
                recorded = await record.json()
                await wait_until(lambda: "lost Redis" in worker.text(), "the worker to notice")
                assert sim.connected == 1  # the call goes on
                await redis.start()
                await wait_until(lambda: "is back" in worker.text(), "the worker to reconnect")
                after = await start_wav(client, short, tmp_path / "o2.wav")
                done = await wait_state(client, after["session_id"], ("ended", "failed"))
                first = await wait_state(client, call["session_id"], ("ended", "failed"))
        finally:
            await stop_worker(worker)
    assert refused.status == 503
    assert refusal["error"].startswith("call refused: the call queue is unavailable")
    assert health.status == 503
    # fleet-fix item 8: a listing is not a "call refused"
    assert listing.status == 503 and record.status == 503
    assert listed["error"].startswith("the list of calls is unavailable"), listed
    assert recorded["error"].startswith("the call's record is unavailable"), recorded
    assert done["state"] == "ended"
    # the call that lived through the outage ended whole, and its end was recorded
    assert first["state"] == "ended" and first["exit_code"] == 0
    first_session = next(iter(sim.sessions.values()))
    assert first_session.ended and first_session.audio_duration_s() > 6.0


async def test_delete_reaches_the_worker_running_the_call_and_metrics_count_it(
    tmp_path: Path,
) -> None:
    long = write_wav(tmp_path / "long.wav", 30.0)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        workers = [
            await start_worker(tmp_path, n, redis.url, write_config(tmp_path / "w.toml", sim.url))
            for n in ("a", "b")
        ]
        try:
            for w in workers:
                await w.ready()
            async with front_door(redis.url) as client:
                call = await start_wav(client, long, tmp_path / "o1.wav")
                running = await wait_state(client, call["session_id"], ("running",))
                await wait_until(lambda: sim.connected == 1, "the call to reach the agent")
                listed = await (await client.get("/sessions")).json()
                unauthorized = await client.delete(
                    f"/sessions/{call['session_id']}", headers={"Authorization": "Bearer nope"}
                )
                resp = await client.delete(f"/sessions/{call['session_id']}")
                accepted = resp.status
                stopped = await wait_state(client, call["session_id"], ("stopped",))
                missing = await client.delete("/sessions/no-such-call")
                (row,) = [s for s in listed["sessions"] if s["id"] == call["session_id"]]
                async with ClientSession() as http:
                    url = row["worker_url"] + "/metrics"
                    refused = await http.get(url)
                    text = await (await http.get(url, headers=AUTH_HEADER)).text()
        finally:
            for w in workers:
                await stop_worker(w)
    assert unauthorized.status == 401 and accepted == 202 and missing.status == 404
    assert stopped["worker"] == running["worker"]
    assert not pid_alive(running["pid"])
    assert next(iter(sim.sessions.values())).ended  # the bot left cleanly (session.end)
    assert len(listed["workers"]) == 2
    assert refused.status == 401  # a worker's /metrics needs the token too
    assert 'botrun_worker_calls_total{outcome="stopped"} 1.0' in text
    assert "botrun_worker_capacity 2.0" in text
    assert 'botrun_call_start_seconds_count{start="warm"} 1.0' in text


END_HOOK = """
import os
from pathlib import Path


def on_call_end(call, summary):
    Path(os.environ["BOTRUN_TEST_REASON_FILE"]).write_text(summary.reason)
"""


def config_with_end_hook(
    tmp_path: Path, agent_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """A worker config whose bots write their call summary's reason to the returned file
    (an ``on_call_end`` hook importable by the bot processes)."""
    (tmp_path / "fleet_end_hook.py").write_text(END_HOOK)
    reason_file = tmp_path / "reason.txt"
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("BOTRUN_TEST_REASON_FILE", str(reason_file))
    config = write_config(tmp_path / "w.toml", agent_url)
    config.write_text(config.read_text() + '\n[bot]\nhooks = "fleet_end_hook"\n')
    return config, reason_file


async def test_a_call_stopped_by_delete_tells_its_bot_and_its_record_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fleet2 item 2: the bot's on_call_end saw reason "SIGTERM" and the record said
    "stopped by request or at the end of the drain", although the worker knew which."""
    long = write_wav(tmp_path / "long.wav", 30.0)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        config, reason_file = config_with_end_hook(tmp_path, sim.url, monkeypatch)
        worker = await start_worker(tmp_path, "a", redis.url, config)
        try:
            await worker.ready()
            async with front_door(redis.url) as client:
                call = await start_wav(client, long, tmp_path / "o1.wav")
                await wait_until(lambda: sim.connected == 1, "the call to reach the agent")
                resp = await client.delete(f"/sessions/{call['session_id']}")
                stopped = await wait_state(client, call["session_id"], ("stopped",))
                await wait_until(reason_file.exists, "the bot's on_call_end hook")
        finally:
            await stop_worker(worker)
    assert resp.status == 202
    assert stopped["error"] == "stopped by request (DELETE /sessions)", stopped
    assert reason_file.read_text() == "stopped by request (DELETE /sessions)"
    assert next(iter(sim.sessions.values())).ended  # still the clean leave
    assert "Traceback" not in worker.text()


async def test_busy_past_the_queue_limit_and_a_call_waiting_past_the_queue_wait_never_starts(
    tmp_path: Path,
) -> None:
    short = write_wav(tmp_path / "short.wav", 1.0)
    async with (
        redis_server(tmp_path) as redis,
        CountingSimulator() as sim,
        front_door(redis.url, queue_wait_s=1.0, max_queued=1) as client,
    ):
        waiting = await start_wav(client, short, tmp_path / "o1.wav")
        busy = await client.post(
            "/start", json={"transport": "wav", "options": {"input": [short.name]}}
        )
        refusal = await busy.json()
        await asyncio.sleep(2.5)  # past the queue wait, with no worker at all
        worker = await start_worker(
            tmp_path, "a", redis.url, write_config(tmp_path / "w.toml", sim.url)
        )
        try:
            await worker.ready()
            expired = await wait_state(client, waiting["session_id"], ("failed", "ended"))
            async with front_door(redis.url) as patient:  # the default queue wait
                after = await start_wav(patient, short, tmp_path / "o2.wav")
                done = await wait_state(patient, after["session_id"], ("ended", "failed"))
        finally:
            await stop_worker(worker)
    assert busy.status == 503
    assert refusal["queue_depth"] == 1 and refusal["error"].startswith("busy")
    assert expired["state"] == "failed" and "queue wait" in expired["error"]
    assert done["state"] == "ended" and sim.total == 1  # the expired call never started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--queue", "http://nope"), "is not a Redis URL"),
        # fleet-fix item 5: the value as typed (was "://localhost:6379/notaurl"), password masked
        (("--queue", "notaurl"), "--queue notaurl is not a Redis URL"),
        (("--queue", "http://u:s3cret@x/0"), "--queue http://u:***@x/0 is not a Redis URL"),
        (("--queue", "redis://127.0.0.1:1/0", "--transport", "fax"), "no such transport"),
        (("--queue", "redis://127.0.0.1:1/0"), "DAILY_API_KEY is not set"),
        (
            ("--queue", "redis://127.0.0.1:1/0", "--transport", "wav", "--host", "0.0.0.0"),
            "without BOTRUN_API_TOKEN: set it",
        ),
    ],
)
def test_worker_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    env = botrun_env()
    env.pop("DAILY_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "botrun.bots.cli", "worker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,  # no .env here
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and message in done.stderr.strip().splitlines()[-1]


def test_serve_queue_error_quotes_the_url_as_typed(tmp_path: Path) -> None:
    """Fleet-fix item 5: ``serve --queue http://x`` said ``http://x:6379/0``."""
    done = subprocess.run(
        [sys.executable, "-m", "botrun.bots.cli", "serve", "--queue", "http://x"],
        capture_output=True,
        text=True,
        timeout=60,
        env=botrun_env(),
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "botrun: error: --queue http://x is not a Redis URL (redis://host:port/db, "
        "rediss:// for TLS, unix:///path.sock)"
    )


async def test_serve_queue_command_runs_the_front_door_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    async with redis_server(tmp_path) as redis:
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "botrun.bots.cli", "serve", "--queue", redis.url, "--port", str(port)),
                *("--call-transport", "wav", "--max-queued", "5"),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=botrun_env(BOTRUN_API_TOKEN=API_TOKEN, DAILY_DIALIN_SECRET=DIALIN_SECRET),
                cwd=tmp_path,
            )
        try:
            await wait_until(lambda: "listening on" in log.read_text(), "serve to listen")
            base = f"http://127.0.0.1:{port}"
            async with ClientSession(headers=AUTH_HEADER) as http:
                health = await http.get(base + "/health")
                body = {"transport": "wav", "options": {"input": ["a.wav"]}}
                queued = await http.post(base + "/start", json=body)
                info = await queued.json()
                unknown = await http.post(base + "/start", json={"transport": "agora"})
                bad = [
                    await http.post(base + "/start", json={"transport": "wav", "options": o})
                    for o in ({"shell": "x"}, {"agent_url": "wss://evil.example/ws"})
                ]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
    text = log.read_text()
    assert health.status == 200 and queued.status == 202 and info["queue_depth"] == 1
    # an unaccepted transport, an unknown option, and the agent URL (the bot would send the
    # worker's agent key there) are refused
    assert unknown.status == 400 and [b.status for b in bad] == [400, 400]
    assert code == 0 and "Traceback" not in text and API_TOKEN not in text


async def test_sigterm_while_redis_is_down_still_drains_the_call(tmp_path: Path) -> None:
    long = write_wav(tmp_path / "long.wav", 5.0)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        worker = await start_worker(
            tmp_path, "a", redis.url, write_config(tmp_path / "w.toml", sim.url)
        )
        try:
            await worker.ready()
            async with front_door(redis.url) as client:
                await start_wav(client, long, tmp_path / "o1.wav")
                await wait_until(lambda: sim.connected == 1, "the call to reach the agent")
            redis.stop()
            await wait_until(lambda: "lost Redis" in worker.text(), "the worker to notice")
            worker.signal(signal.SIGTERM)
            code = await worker.wait(90)
        finally:
            await stop_worker(worker)
    assert code == 0, worker.text()
    session = next(iter(sim.sessions.values()))
    assert session.ended and session.audio_duration_s() > 3.0  # the call ended whole
    assert "Traceback" not in worker.text()


async def test_a_drain_that_times_out_stops_the_call_with_true_log_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fleet-fix item 4: the end of a normal drain (Redis up) logged "waiting for 1 call(s)
    to end (Redis unreachable)" and arq's ERROR "run_call failed, CancelledError" with a
    traceback, although the call was correctly stopped. Fleet2 item 2: the record and the
    bot's on_call_end say it was the drain."""
    long = write_wav(tmp_path / "long.wav", 20.0)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        config, reason_file = config_with_end_hook(tmp_path, sim.url, monkeypatch)
        worker = await start_worker(tmp_path, "a", redis.url, config, drain_timeout_s=1)
        try:
            await worker.ready()
            async with front_door(redis.url) as client:
                call = await start_wav(client, long, tmp_path / "o1.wav")
                await wait_until(lambda: sim.connected == 1, "the call to reach the agent")
                worker.signal(signal.SIGTERM)
                code = await worker.wait(90)
                record = await call_state(client, call["session_id"])
        finally:
            await stop_worker(worker)
    text = worker.text()
    assert code == 0, text
    assert record["state"] == "stopped", record
    drain = "stopped by the worker's drain (the worker is stopping)"
    assert record["error"] == drain and reason_file.read_text() == drain, record
    assert "Redis unreachable" not in text, text
    assert "ERROR" not in text and "Traceback" not in text, text


async def test_front_door_checks_dialin_webhooks_as_serve_does(tmp_path: Path) -> None:
    """The front door and serve share one dial-in reader (bots/serve/app.receive_dialin):
    same answers; the front door counts refusals."""
    good = json.dumps({"callId": "call-1", "callDomain": "d"}).encode()
    ts = str(int(time.time()))
    json_headers = {"Content-Type": "application/json"}
    bad_signature = {
        **json_headers,
        webhook.SIGNATURE_HEADER: webhook.sign(b"another key", ts, good),
        webhook.TIMESTAMP_HEADER: ts,
    }
    not_json = b"{nope"
    signed_not_json = {
        **json_headers,
        webhook.SIGNATURE_HEADER: webhook.sign(DIALIN_KEY, ts, not_json),
        webhook.TIMESTAMP_HEADER: ts,
    }
    async with redis_server(tmp_path) as redis, front_door(redis.url) as door:
        test = await door.post("/dialin", data=b'{"Test": "test"}', headers=json_headers)
        forged = await door.post("/dialin", data=good, headers=bad_signature)
        malformed = await door.post("/dialin", data=not_json, headers=signed_not_json)
        answers = [(r.status, await r.json()) for r in (test, forged, malformed)]
        queued = await door.app[REDIS].zcard(jobs.QUEUE_NAME)
        metrics = await (await door.get("/metrics")).text()
    assert answers == [
        (200, {"ok": True, "test": True}),
        (401, {"error": "bad signature"}),
        (400, {"error": "body is not JSON"}),
    ]
    assert queued == 0
    assert 'botrun_frontdoor_calls_total{result="refused"} 2.0' in metrics


async def test_serve_queue_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    async with redis_server(tmp_path) as redis:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            done = await asyncio.to_thread(
                run_cli, "serve", "--queue", redis.url, "--port", str(port)
            )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"botrun: error: cannot listen on 127.0.0.1:{port}: ")
    )
