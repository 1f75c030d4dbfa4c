"""A phone call from webhook to hang-up: serve, a real bot process with the real Daily
transport, the fake Daily REST API and the local agent simulator.

The bot process runs the real ``botrun daily`` command. Only the network join is replaced:
the harness builds everything ``join`` builds (SDK init, voice track, event handler, call
client) and then, from a foreign thread as daily-python would, calls the transport's SDK
event handler with the arguments daily-python passes: ``on_dialin_ready`` twice, the caller
joining, and the caller hanging up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from serve_support import serve_harness, wait_for

pytest.importorskip("daily")

CALLER = "+15552223333"
GREETING = "Hello caller."

HARNESS = r'''
"""A bot process whose Daily join is driven offline (see the test module docstring)."""
import atexit, json, os, sys, threading, time

from botrun.transports.daily.transport import DailyTransport

RECORD = os.path.join(os.environ["E2E_DIR"], f"bot-{os.getpid()}.json")
CALLER = os.environ["E2E_CALLER"]
TRANSCRIPT = os.path.join(os.environ["E2E_DIR"], "transcript.jsonl")
state = {"written": 0, "forward_calls": None, "forwarded": None, "steps": []}


def save():
    with open(RECORD, "w") as f:
        json.dump(state, f)


atexit.register(save)


def wait(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            state["steps"].append(f"timeout: {what}")
            return False
        time.sleep(0.01)
    return True


def greeting_done():
    try:
        with open(TRANSCRIPT) as f:
            return any(json.loads(line)["role"] == "agent" for line in f if line.strip())
    except FileNotFoundError:
        return False


def drive(transport):
    """What daily-python would do, on its own thread."""
    handler = transport._handler
    endpoint = f"{transport.options.room_name}@botrun-test.sip.daily.co"
    handler.on_call_state_updated("joined")
    handler.on_dialin_ready(endpoint)
    handler.on_dialin_ready(endpoint)  # fires again: must not forward twice
    state["steps"].append("dialin_ready x2")
    if not wait(lambda: transport.forwarder.forwarded, "call forwarded"):
        return
    handler.on_dialin_connected({"sessionId": "sip-1", "sipFrom": CALLER, "displayName": CALLER})
    caller = {"id": "caller-1", "info": {"isLocal": False, "isOwner": False,
                                         "userName": CALLER}, "media": {}}
    handler.on_participant_joined(caller)
    state["steps"].append("caller joined")
    if not wait(lambda: state["written"] >= 16000 * 2 * 3 // 10, "greeting audio"):
        return
    if not wait(greeting_done, "the greeting to finish"):
        return
    handler.on_dialin_stopped({"sessionId": "sip-1"})
    handler.on_participant_left(caller, "leftCall")
    state["steps"].append("caller hung up")


async def offline_join(self, events):
    self.prepare(events)
    threading.Thread(target=drive, args=(self,), daemon=True).start()


real_write = DailyTransport.write_audio


def counting_write(self, pcm):
    state["written"] += len(pcm)
    real_write(self, pcm)


real_leave = DailyTransport.leave


async def recording_leave(self):
    state["steps"].append("leave")
    if self.forwarder is not None:
        state["forward_calls"] = self.forwarder.calls
        state["forwarded"] = self.forwarder.forwarded
    await real_leave(self)


DailyTransport.join = offline_join
DailyTransport.write_audio = counting_write
DailyTransport.leave = recording_leave

from botrun.bots.cli import main

main([*sys.argv[1:], "--audio-out", "custom-track",
      "--transcript", TRANSCRIPT])
'''


async def test_phone_call_is_forwarded_once_greeted_and_cleaned_up(tmp_path: Path) -> None:
    from botrun.core.sim import Simulator

    harness = tmp_path / "dialin_bot.py"
    harness.write_text(HARNESS)
    async with Simulator() as sim:
        config = tmp_path / "bot.toml"
        config.write_text(
            f'[bot]\nname = "phone bot"\n\n[agent]\nurl = "{sim.url}"\ngreeting = "{GREETING}"\n'
        )
        async with serve_harness(
            tmp_path,
            bot_command=[sys.executable, str(harness), "daily"],
            extra_env={"E2E_DIR": str(tmp_path), "E2E_CALLER": CALLER},
            config=str(config),
            stop_timeout_s=10.0,
        ) as h:
            resp = await h.dialin("call-e2e", CALLER)
            assert resp.status == 200, await resp.text()
            (session,) = h.supervisor.sessions()
            (room_name,) = h.api.rooms
            await wait_for(
                lambda: session.exit_code is not None, "the bot to hang up and exit", timeout=60
            )
            await wait_for(lambda: h.api.rooms == {}, "the room to be deleted")
            output = "\n".join(session.tail)
            assert session.exit_code == 0, output
            assert h.supervisor.busy == 0

        (record_file,) = tmp_path.glob("bot-*.json")
        record = json.loads(record_file.read_text())
        assert record["steps"] == ["dialin_ready x2", "caller joined", "caller hung up", "leave"], (
            output
        )
        # on_dialin_ready twice -> exactly one pinlessCallUpdate, to the room's endpoint.
        assert record["forward_calls"] == 1 and record["forwarded"] is True
        assert h.api.pinless_updates == [
            {
                "callId": "call-e2e",
                "callDomain": "dom-1",
                "sipUri": f"sip:{room_name}@botrun-test.sip.daily.co",
            }
        ]
        # The bot joined with the owner token serve minted, passed through its environment.
        (token,) = h.api.tokens
        assert h.api.tokens[token]["room_name"] == room_name
        assert h.api.deleted == [room_name]

        # The caller heard the greeting: the simulator sent it and the bot played it.
        sim_session = sim.session()
        assert sim_session.config["greeting"] == GREETING
        assert sim_session.replies and sim_session.replies[0].text == GREETING
        assert record["written"] >= 16000 * 2 * 3 // 10
        lines = (tmp_path / "transcript.jsonl").read_text().splitlines()
        agent = [json.loads(line) for line in lines if json.loads(line)["role"] == "agent"]
        assert agent[0]["text"] == GREETING and agent[0]["interrupted"] is False
        assert sim_session.replies[0].status == "completed"
