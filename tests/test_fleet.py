"""The call fleet (issue 20) against a real redis-server: ``botrun worker`` processes taking
WAV calls (the stand-in call) through the front door, each call a real bot process talking
to a local simulator."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from fleet_support import (
    CountingSimulator,
    call_state,
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

from botrun.bots.fleet.frontdoor import REDIS


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
