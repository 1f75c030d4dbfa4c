"""Probe item 9: a fleet ``wav`` job (from an API client of the front door) reads and writes
only inside the folder the worker's operator chose with ``botrun worker --files DIR``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from botrun.bots.fleet.jobs import CallJob
from botrun.bots.worker.engine import WorkerSettings
from botrun.bots.worker.wav_kind import make_prepare


async def argv_for(files: Path, options: dict[str, Any]) -> list[str]:
    prepare = make_prepare(files)
    argv, _, _ = await prepare(
        CallJob(session_id="s1", transport="wav", options=options),
        WorkerSettings(queue_url="redis://127.0.0.1:1/0", config="/srv/bot.toml"),
    )
    return argv


async def test_relative_paths_land_in_the_files_folder(tmp_path: Path) -> None:
    argv = await argv_for(tmp_path, {"input": ["in/a.wav"], "output": "o.wav", "speed": 2})
    root = tmp_path.resolve()
    assert argv == [
        "wav",
        f"--input={root / 'in' / 'a.wav'}",
        f"--output={root / 'o.wav'}",
        "--speed=2",
        "--config",
        "/srv/bot.toml",
    ]
    # no output given: the session's own file in the folder, not the worker's directory
    assert f"--output={root / 's1.wav'}" in await argv_for(tmp_path, {"input": ["a.wav"]})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input": ["a.wav"], "output": "/etc/o.wav"}, "relative to the worker's --files"),
        ({"input": ["/etc/passwd"]}, "relative to the worker's --files"),
        ({"input": ["a.wav"], "output": "../o.wav"}, "outside the worker's --files"),
        ({"input": ["a.wav"], "transcript": "x/../../t.jsonl"}, "outside the worker's --files"),
        ({"input": ["a.wav"], "record": "/tmp/rec"}, "relative to the worker's --files"),
        ({"input": ["link/a.wav"]}, "outside the worker's --files"),
        ({"input": ["a.wav"], "config": "bot.toml"}, "not allowed: config"),
        ({"input": ["a.wav"], "agent_url": "ws://evil/"}, "not allowed: agent_url"),
        ({"input": ["a.wav"], "output=/etc/x": "1"}, "not allowed: output=/etc/x"),
    ],
)
async def test_paths_outside_the_folder_and_other_options_are_refused(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "link").symlink_to(tmp_path)  # a symlink out of the folder
    with pytest.raises(ValueError, match=message):
        await argv_for(files, options)


WORKER = ("--queue", "redis://127.0.0.1:1/0", "--transport", "wav")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "--transport wav needs --files DIR"),
        (("--files", "/nonexistent-botrun-files"), "no such directory"),
    ],
)
def test_a_wav_worker_needs_its_files_folder(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "botrun.bots.cli", "worker", *WORKER, *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


async def test_a_wav_job_writes_its_transcript_and_recording_in_the_files_folder(
    tmp_path: Path,
) -> None:
    """Fleet-fix item 1: the front door refused ``transcript`` and ``record`` (``wav has no
    option 'record'``) although docs/deploy.md and ``--files`` promise them."""
    from fleet_support import (
        CountingSimulator,
        front_door,
        redis_server,
        start_worker,
        stop_worker,
        wait_state,
        write_config,
        write_wav,
    )

    write_wav(tmp_path / "u1.wav", 1.0)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        config = write_config(tmp_path / "w.toml", sim.url)
        worker = await start_worker(tmp_path, "a", redis.url, config, capacity=1)
        try:
            await worker.ready()
            async with front_door(redis.url) as client:
                resp = await client.post(
                    "/start",
                    json={
                        "transport": "wav",
                        "options": {
                            "input": ["u1.wav"],
                            "output": "o.wav",
                            "transcript": "t.jsonl",
                            "record": "recf",
                        },
                    },
                )
                assert resp.status == 202, await resp.text()
                sid = (await resp.json())["session_id"]
                done = await wait_state(client, sid, ("ended", "failed"), 90)
        finally:
            await stop_worker(worker)
    assert done["state"] == "ended", (done, worker.text())
    assert (tmp_path / "o.wav").is_file()
    assert (tmp_path / "t.jsonl").is_file()
    recorded = sorted(p.name for p in (tmp_path / "recf").iterdir())
    assert any(name.endswith(".wav") for name in recorded), recorded
    assert any(name.endswith(".jsonl") for name in recorded), recorded


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input": "u1.wav", "speed": "x"}, "option 'speed': 'x' is not a valid float"),
        ({"input": ["u1.wav"], "speed": 1000}, "option 'speed': must be ≤ 100"),
        ({"input": ["u1.wav"], "rate": "abc"}, "option 'rate': 'abc' is not a valid integer"),
        ({"input": ["u1.wav"], "at": [-1]}, "option 'at': must be ≥ 0"),
        ({"input": ["u1.wav"], "speed": [1, 2]}, "option 'speed' takes one value"),
        ({"input": ["u1.wav"], "sped": 2}, "wav has no option 'sped' (did you mean 'speed'?)"),
        # Fleet2 item 1: these were queued and failed on the worker (botrun wav's own checks)
        ({"input": ["u1.wav"], "dtmf": "x"}, "option 'dtmf': 'x': expected SECONDS:DIGITS"),
        ({"input": ["u1.wav"], "dtmf": "1:Z"}, "option 'dtmf': '1:Z': 'Z' is not a keypad"),
        ({"input": ["u1.wav"], "phone": ["123"]}, "option 'phone': '123': expected a phone"),
        ({}, "option 'input' is required"),
        ({"input": ["u1.wav"], "speed": True}, "option 'speed': needs a value"),
        # Probe 5 item 2: lists pair with the inputs by position, as in a [wav] table (the
        # same rule, botrun wav's): one missing would give an input its file name instead
        (
            {"input": ["u1.wav", "u2.wav"], "participant": ["Ann"]},
            "option 'participant' has 1 value(s) for 2 inputs: give one per input, in the "
            'same order ("" for one named after its file)',
        ),
        (
            {"input": ["u1.wav", "u2.wav"], "phone": ["+14155550123"]},
            "option 'phone' has 1 value(s) for 2 inputs",
        ),
        ({"input": ["u1.wav", "u2.wav"], "at": [2.5]}, "option 'at' has 1 value(s) for 2 inputs"),
        ({"input": ["u1.wav", "u2.wav"], "participant": "Ann"}, "option 'participant' has 1"),
        ({"input": "u1.wav", "participant": ["A", "B"]}, "option 'participant' has 2 value(s)"),
    ],
)
async def test_the_front_door_refuses_bad_option_values_naming_the_option(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    """Fleet-fix item 2: these were queued (202) and failed later on the worker with its
    click usage text."""
    from fleet_support import front_door, redis_server

    async with redis_server(tmp_path) as redis, front_door(redis.url) as client:
        resp = await client.post("/start", json={"transport": "wav", "options": options})
        body = await resp.json()
        listing = await (await client.get("/sessions")).json()
    assert resp.status == 400, body
    assert message in body["error"], body
    assert listing["sessions"] == []  # nothing queued


async def test_a_worker_names_files_relative_to_its_folder_and_pairs_lists_by_position(
    tmp_path: Path,
) -> None:
    """Fleet-fix item 2: a missing input was reported to the API caller with the worker's
    absolute path (``input file not found: /tmp/.../nonexist.wav``). And ``at`` given
    before ``input`` in the JSON, paired by position, is the call the caller meant."""
    from fleet_support import (
        CountingSimulator,
        front_door,
        redis_server,
        start_worker,
        stop_worker,
        wait_state,
        write_config,
        write_wav,
    )

    write_wav(tmp_path / "u1.wav", 0.5)
    write_wav(tmp_path / "u2.wav", 0.5)
    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        config = write_config(tmp_path / "w.toml", sim.url)
        worker = await start_worker(tmp_path, "a", redis.url, config, capacity=2)
        try:
            await worker.ready()
            async with front_door(redis.url) as client:
                sids = []
                for options in (
                    {"input": ["nonexist.wav"], "output": "o1.wav"},
                    {"at": [0, 1.0], "input": ["u1.wav", "u2.wav"], "output": "o2.wav"},
                ):
                    resp = await client.post(
                        "/start", json={"transport": "wav", "options": options}
                    )
                    assert resp.status == 202, await resp.text()
                    sids.append((await resp.json())["session_id"])
                missing = await wait_state(client, sids[0], ("ended", "failed"), 90)
                paired = await wait_state(client, sids[1], ("ended", "failed"), 90)
        finally:
            await stop_worker(worker)
    assert missing["state"] == "failed", missing
    assert "nonexist.wav" in missing["error"], missing
    assert str(tmp_path) not in missing["error"] and "/tmp" not in missing["error"], missing
    assert paired["state"] == "ended", (paired, worker.text())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"roomurl": "https://x.daily.co/r"}, "unknown key 'roomurl' (did you mean 'room_url'?)"),
        ({"transport": "wav", "option": {}}, "unknown key 'option' (did you mean 'options'?)"),
        ({"options": {"input": ["a.wav"]}}, "a daily call takes 'room_url', not 'options'"),
        ({"transport": "wav", "room_url": "https://x.daily.co/r"}, "takes 'options'"),
    ],
)
async def test_the_front_door_refuses_unknown_or_misplaced_start_keys(
    tmp_path: Path, body: dict[str, Any], message: str
) -> None:
    """Fleet-fix item 3: ``{"roomurl": ...}`` (a typo) queued a daily call in a new room."""
    from fleet_support import front_door, redis_server

    async with redis_server(tmp_path) as redis, front_door(redis.url) as client:
        resp = await client.post("/start", json=body)
        answer = await resp.json()
        listing = await (await client.get("/sessions")).json()
    assert resp.status == 400, answer
    assert message in answer["error"], answer
    assert listing["sessions"] == []


async def test_the_front_door_answers_unknown_paths_and_wrong_methods_in_json(
    tmp_path: Path,
) -> None:
    """Fleet-fix item 8: aiohttp's own 404/405 were plain text."""
    from fleet_support import front_door, redis_server

    async with redis_server(tmp_path) as redis, front_door(redis.url) as client:
        missing = await client.get("/nope")
        wrong = await client.delete("/start")
        assert missing.status == 404 and (await missing.json())["error"].startswith("no such")
        assert wrong.status == 405 and "not allowed" in (await wrong.json())["error"]


async def test_a_call_refused_before_its_bot_started_is_logged_with_why(tmp_path: Path) -> None:
    """Fleet2 item 3: the worker logged ``call <id> failed (exit code None)`` for a call it
    refused before any bot started (here: an input outside its --files folder)."""
    from fleet_support import (
        CountingSimulator,
        front_door,
        redis_server,
        start_worker,
        stop_worker,
        wait_state,
        write_config,
    )

    async with redis_server(tmp_path) as redis, CountingSimulator() as sim:
        config = write_config(tmp_path / "w.toml", sim.url)
        worker = await start_worker(tmp_path, "a", redis.url, config, capacity=1)
        try:
            await worker.ready()
            async with front_door(redis.url) as client:
                resp = await client.post(
                    "/start", json={"transport": "wav", "options": {"input": ["../x.wav"]}}
                )
                assert resp.status == 202, await resp.text()
                sid = (await resp.json())["session_id"]
                done = await wait_state(client, sid, ("failed", "ended"), 60)
        finally:
            await stop_worker(worker)
    text = worker.text()
    assert done["state"] == "failed" and "outside the worker's --files" in done["error"], done
    assert f"call {sid} failed: cannot start the bot: " in text, text
    assert "exit code None" not in text, text
