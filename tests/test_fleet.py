"""The call fleet (issue 20) against a real redis-server: ``botrun worker`` processes taking
WAV calls (the stand-in call) through the front door, each call a real bot process talking
to a local simulator."""

from __future__ import annotations

from pathlib import Path

from fleet_support import (
    CountingSimulator,
    front_door,
    redis_server,
    start_wav,
    start_worker,
    stop_worker,
    wait_state,
    write_config,
    write_wav,
)


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
