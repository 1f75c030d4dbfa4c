"""``botrun serve``'s HTTP app with real child processes and the fake Daily REST API."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from fake_daily_api import API_KEY
from serve_support import DIALIN_SECRET, serve_harness, wait_for


async def test_signed_dialin_creates_sip_room_token_and_one_bot(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        resp = await h.dialin("call-1", "+15552223333")
        assert resp.status == 200, await resp.text()
        data = await resp.json()
        (room_req,) = h.api.calls("POST", "/rooms")
        sip = room_req.json["properties"]["sip"]
        assert sip["display_name"] == "+15552223333" and sip["sip_mode"] == "dial-in"
        (room_name,) = h.api.rooms
        assert data["room_url"] == h.api.rooms[room_name]["url"]
        (token,) = h.api.tokens
        assert h.api.tokens[token]["is_owner"] is True
        assert h.api.tokens[token]["room_name"] == room_name

        (record,) = await wait_for(h.bot_records, "the bot to start")
        assert record["argv"] == [
            "--room",
            data["room_url"],
            "--dialin-call-id",
            "call-1",
            "--dialin-call-domain",
            "dom-1",
        ]
        assert record["env"]["DAILY_MEETING_TOKEN"] == token  # in the env, never argv
        assert token not in " ".join(record["argv"])
        assert record["env"]["DAILY_API_KEY"] == API_KEY
        assert record["env"]["DAILY_API_URL"] == h.api.base_url
        assert record["env"]["DAILY_DIALIN_SECRET"] is None  # a bot never needs it

        sessions = await (await h.client.get("/sessions")).json()
        (info,) = sessions["sessions"]
        assert info["id"] == data["session_id"]
        assert info["call_id"] == "call-1" and info["caller"] == "+15552223333"
        assert info["kind"] == "dialin" and info["state"] == "running"
        assert info["pid"] == record["pid"]
        health = await (await h.client.get("/health")).json()
        assert health == {"status": "ok", "bots": 1, "max_bots": 2}

        # Ask it to leave: SIGTERM, exit 0, room deleted, slot freed.
        resp = await h.client.delete(f"/sessions/{data['session_id']}")
        assert resp.status == 202
        await wait_for(lambda: h.api.deleted == [room_name], "the room to be deleted")
        assert h.supervisor.sessions() == []
        assert (await (await h.client.get("/health")).json())["bots"] == 0


async def test_daily_retry_of_the_same_call_starts_no_second_bot(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        first = await (await h.dialin("call-7")).json()
        second = await h.dialin("call-7")
        assert second.status == 200
        assert await second.json() == {"duplicate": True, **first}
        assert len(h.api.calls("POST", "/rooms")) == 1
        assert len(h.supervisor.sessions()) == 1


async def test_daily_test_payload_is_answered_and_starts_nothing(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        resp = await h.dialin(body=b'{"Test": "test"}', sign=False)
        assert resp.status == 200
        assert (await resp.json())["test"] is True
        assert h.api.requests == [] and h.supervisor.sessions() == []


@pytest.mark.parametrize("case", ["unsigned", "forged", "stale"])
async def test_unsigned_forged_or_stale_webhook_is_401_and_starts_nothing(
    tmp_path: Path, case: str
) -> None:
    async with serve_harness(tmp_path) as h:
        if case == "unsigned":
            resp = await h.dialin(sign=False)
        elif case == "forged":
            resp = await h.dialin(key=b"attacker key")
        else:
            resp = await h.dialin(timestamp="1000000000")
        assert resp.status == 401
        assert "error" in await resp.json()
        assert h.api.requests == []
        assert h.supervisor.sessions() == [] and h.supervisor.busy == 0
        assert h.bot_records() == []


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'{"From": "+1", "callDomain": "d"}', b"\xff\x00"]
)
async def test_malformed_webhook_is_400(tmp_path: Path, body: bytes) -> None:
    async with serve_harness(tmp_path) as h:
        resp = await h.dialin(body=body)
        assert resp.status == 400
        assert h.api.requests == [] and h.supervisor.busy == 0


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        resp = await h.dialin(body=b'{"pad": "' + b"x" * 100_000 + b'"}')
        assert resp.status == 413
        resp = await h.client.post("/start", data=b"x" * 100_000)
        assert resp.status == 413
        assert h.api.requests == [] and h.supervisor.busy == 0


async def test_flood_beyond_max_bots_is_503_without_leaking(tmp_path: Path) -> None:
    async with serve_harness(tmp_path, max_bots=2) as h:
        statuses = [(await h.dialin(f"call-{i}")).status for i in range(5)]
        assert sorted(statuses) == [200, 200, 503, 503, 503]
        assert len(h.api.calls("POST", "/rooms")) == 2  # refused calls created nothing
        assert len(h.api.tokens) == 2
        assert (await h.client.post("/start", json={})).status == 503
        await wait_for(lambda: len(h.bot_records()) == 2, "both bots to start")
    # After shutdown: every bot stopped, every room serve created deleted.
    assert h.api.rooms == {}
    assert h.supervisor.sessions() == [] and h.supervisor.busy == 0


async def test_room_creation_failure_is_502_with_daily_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve_harness(tmp_path) as h:
        h.api.fail(
            "POST",
            "/rooms",
            400,
            {"error": "invalid-request-error", "info": "sip is not enabled for this domain"},
        )
        with caplog.at_level(logging.ERROR, logger="botrun.serve"):
            resp = await h.dialin("call-x")
        assert resp.status == 502
        assert "sip is not enabled for this domain" in (await resp.json())["error"]
        assert "sip is not enabled for this domain" in caplog.text
        assert API_KEY not in caplog.text
        assert h.supervisor.busy == 0 and h.bot_records() == []


async def test_token_failure_deletes_the_new_room(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        h.api.fail("POST", "/meeting-tokens", 500, times=5)
        resp = await h.dialin("call-y")
        assert resp.status == 502
        assert len(h.api.calls("POST", "/rooms")) == 1
        assert len(h.api.deleted) == 1 and h.api.rooms == {}
        assert "error" in (await resp.json())
        assert h.supervisor.busy == 0 and h.bot_records() == []


async def test_unrunnable_bot_command_is_500_and_cleans_up(tmp_path: Path) -> None:
    async with serve_harness(tmp_path, bot_command=[str(tmp_path / "no-such-bot")]) as h:
        resp = await h.dialin("call-z")
        assert resp.status == 500
        assert h.api.rooms == {} and len(h.api.deleted) == 1
        assert h.supervisor.busy == 0


async def test_crashed_bot_is_logged_frees_its_slot_and_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="botrun.serve")
    async with serve_harness(tmp_path, mode="crash", max_bots=1) as h:
        resp = await h.dialin("call-c")
        assert resp.status == 200
        await wait_for(lambda: h.api.rooms == {}, "the crashed bot's room to be deleted")
        assert h.supervisor.busy == 0
        assert "crashed (exit code 3)" in caplog.text
        assert "boom: the bot fell over" in caplog.text
        # The slot is free again.
        assert (await h.dialin("call-d")).status == 200


async def test_bot_max_duration_stops_the_bot(tmp_path: Path) -> None:
    async with serve_harness(tmp_path, bot_max_duration_s=0.5) as h:
        resp = await h.dialin("call-long")
        assert resp.status == 200
        await wait_for(
            lambda: h.api.rooms == {} and h.supervisor.busy == 0,
            "the bot to be stopped at its maximum duration",
        )
        assert len(h.bot_records()) == 1


async def test_shutdown_kills_a_bot_that_ignores_sigterm(tmp_path: Path) -> None:
    async with serve_harness(tmp_path, mode="stubborn", stop_timeout_s=0.3) as h:
        await h.dialin("call-s")
        await wait_for(h.bot_records, "the bot to start")
        (session,) = h.supervisor.sessions()
    assert session.process.returncode is not None
    assert h.api.rooms == {}


async def test_start_in_a_given_room_keeps_the_room(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        url = "https://botrun-test.daily.co/standup"
        h.api.rooms["standup"] = {"name": "standup", "url": url, "config": {}}
        resp = await h.client.post("/start", json={"room_url": url})
        assert resp.status == 200
        data = await resp.json()
        assert data["room_url"] == url
        (record,) = await wait_for(h.bot_records, "the bot to start")
        assert record["argv"] == ["--room", url]
        assert h.api.calls("POST", "/rooms") == []
        await h.client.delete(f"/sessions/{data['session_id']}")
        await wait_for(lambda: h.supervisor.busy == 0, "the bot to leave")
        assert "standup" in h.api.rooms and h.api.deleted == []


async def test_start_without_room_creates_and_later_deletes_one(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        resp = await h.client.post("/start")
        assert resp.status == 200
        data = await resp.json()
        (name,) = h.api.rooms
        assert data["room_url"].endswith(f"/{name}")
        assert "sip" not in h.api.calls("POST", "/rooms")[0].json["properties"]
    assert h.api.deleted == [name]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "not a JSON object"),
        (b"{oops", "not JSON"),
        (b'{"room_url": 3}', "must be a string"),
        (b'{"room_url": "nope"}', "not a Daily room URL"),
    ],
)
async def test_start_rejects_bad_bodies(tmp_path: Path, body: bytes, message: str) -> None:
    async with serve_harness(tmp_path) as h:
        resp = await h.client.post("/start", data=body)
        assert resp.status == 400
        assert message in (await resp.json())["error"]
        assert h.supervisor.busy == 0


async def test_start_refuses_an_unknown_key_and_starts_nothing(tmp_path: Path) -> None:
    """Fleet-fix item 3: a typo (``roomurl``) was ignored: a new room and a bot started."""
    async with serve_harness(tmp_path) as h:
        resp = await h.client.post("/start", json={"roomurl": "https://x.daily.co/r"})
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert "unknown key 'roomurl' (did you mean 'room_url'?)" in error, error
        assert h.supervisor.busy == 0
        assert h.api.calls("POST", "/rooms") == []


async def test_unknown_paths_and_wrong_methods_are_json_refusals(tmp_path: Path) -> None:
    """Fleet-fix item 8: aiohttp's 404 and 405 were plain text; the docs say refusals are
    JSON."""
    async with serve_harness(tmp_path) as h:
        missing = await h.client.get("/nope")
        wrong = await h.client.put("/start")
        assert missing.status == 404 and missing.content_type == "application/json"
        assert (await missing.json()) == {"error": "no such endpoint: /nope"}
        assert wrong.status == 405 and wrong.content_type == "application/json"
        assert "PUT is not allowed on /start" in (await wrong.json())["error"]
        assert "POST" in wrong.headers["Allow"]


async def test_unknown_session_is_404(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        assert (await h.client.delete("/sessions/nope")).status == 404


def test_bot_command_default_is_this_python(tmp_path: Path) -> None:
    from botrun.bots.serve.cli import DEFAULT_BOT_COMMAND

    assert DEFAULT_BOT_COMMAND[:3] == (sys.executable, "-m", "botrun.bots.cli")
    assert DEFAULT_BOT_COMMAND[3] == "daily"
    assert DIALIN_SECRET  # the shared fixture secret is valid base64


def _closed_loopback_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


async def test_unreachable_daily_says_so_not_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12 item 8: a network failure is "could not reach Daily", not "Daily refused"."""
    url = f"http://127.0.0.1:{_closed_loopback_port()}/v1"
    async with serve_harness(tmp_path, daily_url=url) as h:
        with caplog.at_level(logging.ERROR, logger="botrun.serve"):
            dialin = await h.dialin("call-n")
            start = await h.client.post("/start", json={})
        for resp in (dialin, start):
            assert resp.status == 502
            assert (await resp.json())["error"].startswith("could not reach Daily")
        assert caplog.text.count("could not reach Daily") == 2
        assert "refused" not in caplog.text
        assert API_KEY not in caplog.text
        assert h.supervisor.busy == 0 and h.bot_records() == []


async def test_a_refusal_by_daily_still_says_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve_harness(tmp_path) as h:
        h.api.fail("POST", "/rooms", 403, {"error": "authorization-error", "info": "nope"})
        with caplog.at_level(logging.ERROR, logger="botrun.serve"):
            resp = await h.client.post("/start", json={})
        assert resp.status == 502 and "nope" in (await resp.json())["error"]
        assert "Daily refused the room" in caplog.text
        assert "could not reach" not in caplog.text


async def test_a_refused_meeting_token_is_logged_in_plain_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The log names what was refused and for whom (it said "the meeting token of a start
    bot"; polish item 8)."""
    caplog.set_level(logging.INFO, logger="botrun.serve")
    async with serve_harness(tmp_path) as h:
        h.api.fail("POST", "/meeting-tokens", 500, times=5)
        assert (await h.client.post("/start", json={})).status == 502
        assert (await h.dialin("call-t")).status == 502
    assert "Daily refused a meeting token for the bot of POST /start" in caplog.text
    assert "Daily refused a meeting token for the bot of dial-in call call-t" in caplog.text
    assert "start bot" not in caplog.text
