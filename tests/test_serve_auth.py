"""Who may call ``botrun serve`` (issue 12 item 4): the API token on every endpoint that is not
a signed webhook, a liveness probe that reveals nothing, and no unauthenticated serve on a
public address unless the user says ``--insecure``."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fake_daily_api import API_KEY
from helpers_cli import run_botrun
from serve_support import API_TOKEN, DIALIN_SECRET, serve_harness, wait_for

from botrun.bots.serve.auth import Access, ApiAuth, decide, is_loopback
from botrun.core.errors import UsageError


async def _call(
    url: str, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, Any]:
    """One request from a client that is not the harness's (no token unless given)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url + path, headers=headers, **kw) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": f"Bearer {API_TOKEN}x"},
    ],
)
async def test_api_endpoints_need_the_token(tmp_path: Path, headers: dict[str, str] | None) -> None:
    async with serve_harness(tmp_path) as h:
        url = str(h.client.make_url(""))
        # A bot the token holder started, so there is something to list and to stop.
        started = await (await h.client.post("/start", json={})).json()
        await wait_for(h.bot_records, "the bot to start")
        calls_before = len(h.api.requests)

        status, body = await _call(url, "POST", "/start", headers, json={})
        assert status == 401 and "bearer token" in body["error"]
        status, body = await _call(url, "GET", "/sessions", headers)
        assert status == 401 and "sessions" not in body
        status, _ = await _call(url, "DELETE", f"/sessions/{started['session_id']}", headers)
        assert status == 401

        assert len(h.api.requests) == calls_before  # nothing reached Daily
        (session,) = h.supervisor.sessions()
        assert session.id == started["session_id"] and not session.stopping
        assert len(h.bot_records()) == 1


async def test_the_token_opens_the_api(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        url = str(h.client.make_url(""))
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        status, started = await _call(url, "POST", "/start", auth, json={})
        assert status == 200
        status, listed = await _call(url, "GET", "/sessions", auth)
        assert status == 200 and [s["id"] for s in listed["sessions"]] == [started["session_id"]]
        status, _ = await _call(url, "DELETE", f"/sessions/{started['session_id']}", auth)
        assert status == 202


async def test_health_is_open_but_reveals_nothing_without_the_token(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        await h.dialin("call-1")
        url = str(h.client.make_url(""))
        assert await _call(url, "GET", "/health") == (200, {"status": "ok"})
        bad = {"Authorization": "Bearer nope-nope-nope-nope"}
        assert await _call(url, "GET", "/health", bad) == (200, {"status": "ok"})
        good = {"Authorization": f"Bearer {API_TOKEN}"}
        assert await _call(url, "GET", "/health", good) == (
            200,
            {"status": "ok", "bots": 1, "max_bots": 2},
        )


async def test_unsigned_dialin_without_a_secret_needs_the_token(tmp_path: Path) -> None:
    """No dial-in secret: ``/dialin`` is an API endpoint like the others (it used to start a
    room and a bot for anyone, with a warning)."""
    async with serve_harness(tmp_path, dialin_key=None) as h:
        url = str(h.client.make_url(""))
        call = {"To": "+1555", "From": "+1666", "callId": "c-1", "callDomain": "d"}
        status, _ = await _call(url, "POST", "/dialin", json=call)
        assert status == 401
        assert h.api.requests == [] and h.bot_records() == []
        status, body = await _call(
            url, "POST", "/dialin", {"Authorization": f"Bearer {API_TOKEN}"}, json=call
        )
        assert status == 200 and body["session_id"]


async def test_unsigned_dialin_is_refused_when_a_secret_is_configured(tmp_path: Path) -> None:
    """The API token does not stand in for the webhook signature."""
    async with serve_harness(tmp_path) as h:
        resp = await h.dialin("call-1", sign=False)  # the harness client sends the token
        assert resp.status == 401
        assert h.api.requests == [] and h.bot_records() == []


async def test_closed_api_answers_403_and_signed_webhooks_still_work(tmp_path: Path) -> None:
    async with serve_harness(tmp_path, auth=ApiAuth(Access.CLOSED)) as h:
        url = str(h.client.make_url(""))
        status, body = await _call(url, "POST", "/start", json={})
        assert status == 403 and "BOTRUN_API_TOKEN" in body["error"]
        assert (await _call(url, "GET", "/sessions"))[0] == 403
        assert (await h.dialin("call-1")).status == 200


def test_access_decision() -> None:
    assert decide(host="0.0.0.0", token="t" * 16, has_dialin_secret=False, insecure=False) == (
        ApiAuth(Access.TOKEN, "t" * 16)
    )
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host), host
        assert decide(host=host, token=None, has_dialin_secret=False, insecure=False).access is (
            Access.OPEN
        )
    for host in ("0.0.0.0", "::", "", "192.0.2.10"):
        assert not is_loopback(host), host
        with pytest.raises(UsageError, match="--insecure"):
            decide(host=host, token=None, has_dialin_secret=False, insecure=False)
    public = {"host": "0.0.0.0", "token": None}
    assert decide(**public, has_dialin_secret=True, insecure=False).access is Access.CLOSED
    assert decide(**public, has_dialin_secret=False, insecure=True).access is Access.OPEN
    with pytest.raises(UsageError, match="too short"):
        decide(host="127.0.0.1", token="short", has_dialin_secret=False, insecure=False)


def test_public_host_without_any_secret_refuses_to_start(tmp_path: Path) -> None:
    res = run_botrun(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        cwd=tmp_path,
        env={"DAILY_API_KEY": API_KEY, "ASSEMBLYAI_API_KEY": "k", "BOTRUN_API_TOKEN": ""},
    )
    assert res.returncode == 2, res.stderr
    assert "without authentication" in res.stderr and "--insecure" in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_short_token_is_refused_and_not_echoed(tmp_path: Path) -> None:
    res = run_botrun(
        "serve",
        cwd=tmp_path,
        env={"DAILY_API_KEY": API_KEY, "ASSEMBLYAI_API_KEY": "k", "BOTRUN_API_TOKEN": "sesame1"},
    )
    assert res.returncode == 2
    assert "BOTRUN_API_TOKEN is too short" in res.stderr
    assert "sesame1" not in res.stderr


async def _run_serve_until_listening(
    tmp_path: Path, *args: str, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full.update(env)
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        "serve",
        "--port",
        "0",
        *args,
        cwd=tmp_path,
        env=full,
        stderr=asyncio.subprocess.PIPE,
    )
    assert serve.stderr is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(serve.stderr.readline(), 30)).decode()
        assert line, "serve exited early:\n" + "".join(lines)
        lines.append(line)
        found = re.search(r"listening on http://[^:]+:(\d+)", line)
        if found:
            return serve, int(found.group(1)), lines


async def _stop(serve: asyncio.subprocess.Process) -> str:
    assert serve.stderr is not None
    if serve.returncode is None:
        serve.terminate()
    rest = await asyncio.wait_for(serve.stderr.read(), 30)
    await serve.wait()
    return rest.decode()


async def test_insecure_serves_a_public_host_open_with_a_warning(tmp_path: Path) -> None:
    env = {"DAILY_API_KEY": API_KEY, "ASSEMBLYAI_API_KEY": "k", "BOTRUN_API_TOKEN": ""}
    serve, port, lines = await _run_serve_until_listening(
        tmp_path, "--host", "0.0.0.0", "--insecure", env=env
    )
    try:
        assert any("is open to anyone" in line for line in lines)
        status, body = await _call(f"http://127.0.0.1:{port}", "GET", "/sessions")
        assert status == 200 and body == {"sessions": []}
    finally:
        await _stop(serve)


async def test_token_is_required_over_the_network_and_never_logged(tmp_path: Path) -> None:
    token = "tok-" + "s3cr3t" * 5
    env = {
        "DAILY_API_KEY": API_KEY,
        "ASSEMBLYAI_API_KEY": "k",
        "BOTRUN_API_TOKEN": token,
        "DAILY_DIALIN_SECRET": DIALIN_SECRET,
    }
    serve, port, lines = await _run_serve_until_listening(tmp_path, "--log-level", "debug", env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        # A wrong token that contains the real one, and the real one in the wrong scheme.
        for header in (f"Bearer {token}{token}", f"Token {token}"):
            status, body = await _call(url, "GET", "/sessions", {"Authorization": header})
            assert status == 401, body
        status, body = await _call(url, "GET", "/sessions", {"Authorization": f"Bearer {token}"})
        assert status == 200 and body == {"sessions": []}
    finally:
        output = "".join(lines) + await _stop(serve)
    assert "GET /sessions" in output  # the refusals were logged ...
    assert token not in output  # ... without the token
    assert json.dumps(token) not in output


async def test_open_loopback_api_cannot_be_driven_by_a_web_page(tmp_path: Path) -> None:
    """Without a token the loopback API is open to this machine's programs, not to the web
    pages its browser shows: a cross-site form POST (CSRF) and a page that rebinds its own
    name to 127.0.0.1 (DNS rebinding) are refused before anything reaches Daily (item 1)."""
    from fake_daily_api import FakeDailyApi
    from serve_support import write_stand_in

    script = write_stand_in(tmp_path)
    async with FakeDailyApi() as api:
        env = {
            "DAILY_API_KEY": API_KEY,
            "DAILY_API_URL": api.base_url,
            "ASSEMBLYAI_API_KEY": "k",
            "BOTRUN_API_TOKEN": "",
            "DAILY_DIALIN_SECRET": "",
            "BOT_RECORD_DIR": str(tmp_path / "records"),
        }
        serve, port, _ = await _run_serve_until_listening(
            tmp_path, "--bot-command", f"{sys.executable} {script}", env=env
        )
        try:
            url = f"http://127.0.0.1:{port}"
            evil = "http://evil.example"
            form = {"Origin": evil, "Content-Type": "text/plain"}
            status, body = await _call(url, "POST", "/start", form, data="{}")
            assert status == 403 and "cross-origin" in body["error"], body
            json_from_page = {"Origin": evil, "Content-Type": "application/json"}
            status, body = await _call(url, "POST", "/start", json_from_page, data="{}")
            assert status == 403 and "cross-origin" in body["error"], body
            status, body = await _call(
                url, "POST", "/start", {"Content-Type": "text/plain"}, data="{}"
            )
            assert status == 403 and "application/json" in body["error"], body
            status, body = await _call(url, "POST", "/start", data=b"")  # no Content-Type
            assert status == 403 and "application/json" in body["error"], body
            rebound = {"Host": f"rebind.evil.example:{port}"}
            status, body = await _call(url, "GET", "/sessions", rebound)
            assert status == 403 and "rebind.evil.example" in body["error"], body
            status, body = await _call(url, "DELETE", "/sessions/x", rebound)
            assert status == 403, body
            rebound_post = {**rebound, "Content-Type": "application/json"}
            status, body = await _call(url, "POST", "/start", rebound_post, data="{}")
            assert status == 403, body
            assert await _call(url, "GET", "/health", rebound) == (200, {"status": "ok"})
            assert api.requests == []  # no room, no token
            assert not list((tmp_path / "records").glob("*.json"))  # no bot

            # What a program on this machine sends still works (docs/dialin.md's curl).
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
                status, body = await _call(url, "GET", "/sessions", {"Host": host})
                assert status == 200, (host, body)
            local_page = {"Origin": "http://localhost:3000"}
            status, started = await _call(url, "POST", "/start", local_page, json={})
            assert status == 200 and started["session_id"], started
        finally:
            await _stop(serve)


async def test_insecure_public_api_refuses_cross_origin_posts(tmp_path: Path) -> None:
    """``--insecure`` on a public address: any Host is fine (a proxy's name), but the browser
    checks on Origin and Content-Type still hold."""
    auth = decide(host="0.0.0.0", token=None, has_dialin_secret=False, insecure=True)
    assert auth.access is Access.OPEN and not auth.loopback
    async with serve_harness(tmp_path, auth=auth) as h:
        url = str(h.client.make_url(""))
        status, _ = await _call(url, "GET", "/sessions", {"Host": "bots.example.com"})
        assert status == 200
        form = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
        status, body = await _call(url, "POST", "/start", form, data="{}")
        assert status == 403 and "cross-origin" in body["error"]
        status, body = await _call(url, "POST", "/start", {"Content-Type": "text/plain"}, data="")
        assert status == 403 and "application/json" in body["error"]
        assert h.api.requests == [] and h.bot_records() == []
