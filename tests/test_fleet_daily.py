"""A ``daily`` call job on a worker (issue 20): the worker, not the front door, makes the
room and the bot's token (so no secret travels through Redis), against the fake Daily API."""

from __future__ import annotations

import pytest
from fake_daily_api import API_KEY, FakeDailyApi

from botrun.bots.fleet.jobs import CallJob, session_id_for_call
from botrun.bots.worker.daily_kind import make_prepare
from botrun.bots.worker.engine import WorkerSettings


async def test_a_dialin_job_gets_a_sip_room_an_owner_token_in_env_and_the_room_goes() -> None:
    async with FakeDailyApi() as api:
        prepare = make_prepare(API_KEY, api.base_url, "Ada")
        job = CallJob(
            session_id=session_id_for_call("call-1"),
            transport="daily",
            options={"dialin_call_id": "call-1", "dialin_call_domain": "dom-1"},
            source="dialin",
            call_id="call-1",
            caller="+15552223333",
        )
        settings = WorkerSettings(queue_url="redis://x", config="/etc/bot.toml")
        argv, env, cleanup = await prepare(job, settings)
        (name,) = api.rooms
        url = api.rooms[name]["url"]
        assert api.calls("POST", "/rooms")[0].json["properties"]["sip"]["display_name"] == (
            "+15552223333"
        )
        (token,) = api.tokens
        assert api.tokens[token]["is_owner"] is True and api.tokens[token]["room_name"] == name
        assert argv == [
            "daily",
            "--room",
            url,
            "--dialin-call-id",
            "call-1",
            "--dialin-call-domain",
            "dom-1",
            "--config",
            "/etc/bot.toml",
        ]
        assert env == {"DAILY_MEETING_TOKEN": token} and token not in argv
        assert "token" not in str(job.to_dict()).lower()  # nothing secret in the job
        assert cleanup is not None
        await cleanup()
        assert api.deleted == [name]


async def test_a_token_failure_deletes_the_room_it_made() -> None:
    async with FakeDailyApi() as api:
        api.fail("POST", "/meeting-tokens", 400, {"error": "invalid-request-error"}, times=5)
        prepare = make_prepare(API_KEY, api.base_url)
        job = CallJob(session_id="s1", transport="daily")
        with pytest.raises(Exception, match="invalid-request-error"):
            await prepare(job, WorkerSettings(queue_url="redis://x"))
        assert len(api.deleted) == 1 and api.rooms == {}
