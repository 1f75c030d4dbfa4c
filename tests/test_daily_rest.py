"""The Daily REST client against a real local HTTP server faking Daily's API."""

from __future__ import annotations

import logging
import time

import pytest
from fake_daily_api import API_KEY, FakeDailyApi

from botrun.core.errors import TransportError, UsageError
from botrun.core.secrets import RedactingFilter
from botrun.transports.daily.rest import DailyApiError, DailyRest, room_name_from_url


@pytest.fixture
async def api() -> FakeDailyApi:
    async with FakeDailyApi() as fake:
        yield fake


def client(api: FakeDailyApi, **kw: float) -> DailyRest:
    kw.setdefault("backoff", 0.01)
    return DailyRest(API_KEY, base_url=api.base_url, **kw)  # type: ignore[arg-type]


async def test_create_dialin_room_sends_sip_properties(api: FakeDailyApi) -> None:
    async with client(api) as rest:
        before = time.time()
        room = await rest.create_room(exp_s=600, sip_display_name="+15551234567")
    (req,) = api.calls("POST", "/rooms")
    props = req.json["properties"]
    assert req.authorization == f"Bearer {API_KEY}"
    assert props["sip"] == {
        "display_name": "+15551234567",
        "sip_mode": "dial-in",
        "num_endpoints": 1,
        "video": False,
    }
    assert props["eject_at_room_exp"] is True
    assert before + 600 - 1 <= props["exp"] <= time.time() + 600
    assert room.name in api.rooms
    assert room.url == f"https://botrun-test.daily.co/{room.name}"
    assert room.sip_endpoint == f"sip:{room.name}@botrun-test.sip.daily.co"


async def test_sip_endpoint_already_prefixed_is_kept_once(api: FakeDailyApi) -> None:
    api.sip_prefix = True
    async with client(api) as rest:
        room = await rest.create_room(sip_display_name="+1")
        fetched = await rest.get_room(room.name)
    assert room.sip_endpoint == f"sip:{room.name}@botrun-test.sip.daily.co"
    assert fetched == room


async def test_plain_room_has_no_sip_and_extra_properties_merge(api: FakeDailyApi) -> None:
    async with client(api) as rest:
        room = await rest.create_room(
            exp_s=None, enable_dialout=True, properties={"max_participants": 3}
        )
    props = api.calls("POST", "/rooms")[0].json["properties"]
    assert props == {"enable_dialout": True, "max_participants": 3}
    assert room.sip_endpoint is None


async def test_meeting_token_owner_and_user_name(api: FakeDailyApi) -> None:
    async with client(api) as rest:
        room = await rest.create_room()
        token = await rest.create_meeting_token(room.name, exp_s=120, user_name="bot")
    assert api.tokens[token]["room_name"] == room.name
    assert api.tokens[token]["is_owner"] is True
    assert api.tokens[token]["user_name"] == "bot"
    assert api.tokens[token]["exp"] <= time.time() + 120


async def test_pinless_call_update_body(api: FakeDailyApi) -> None:
    async with client(api) as rest:
        await rest.pinless_call_update("call-1", "domain-1", "abc@x.sip.daily.co")
    assert api.pinless_updates == [
        {"callId": "call-1", "callDomain": "domain-1", "sipUri": "sip:abc@x.sip.daily.co"}
    ]


async def test_delete_room_and_404_counts_as_done(api: FakeDailyApi) -> None:
    async with client(api) as rest:
        room = await rest.create_room()
        await rest.delete_room(room.name)
        await rest.delete_room(room.name)  # already gone: no error
    assert api.deleted == [room.name]
    assert len(api.calls("DELETE", f"/rooms/{room.name}")) == 2


async def test_retries_429_and_5xx_then_succeeds(api: FakeDailyApi) -> None:
    api.fail("POST", "/rooms", 429, {"error": "rate-limit", "info": "slow down"}, retry_after="0")
    api.fail("POST", "/rooms", 503, times=2)
    async with client(api, retries=3) as rest:
        room = await rest.create_room()
    assert len(api.calls("POST", "/rooms")) == 4
    assert room.name in api.rooms


async def test_gives_up_after_retries_with_daily_error_body(
    api: FakeDailyApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.fail(
        "POST",
        "/dialin/pinlessCallUpdate",
        500,
        {"error": "server-error", "info": "sip gateway unavailable"},
        times=10,
    )
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactingFilter())
    async with client(api, retries=2) as rest:
        with pytest.raises(DailyApiError) as info:
            await rest.pinless_call_update("c", "d", "sip:e")
    assert info.value.status == 500
    assert isinstance(info.value, TransportError)
    assert "server-error: sip gateway unavailable" in str(info.value)
    assert len(api.calls("POST", "/dialin/pinlessCallUpdate")) == 3
    assert "retry 2/2" in caplog.text
    assert API_KEY not in caplog.text and API_KEY not in str(info.value)


async def test_client_errors_are_not_retried(api: FakeDailyApi) -> None:
    api.fail("POST", "/rooms", 400, {"error": "invalid-request-error", "info": "bad sip_mode"})
    async with client(api) as rest:
        with pytest.raises(DailyApiError, match="HTTP 400: invalid-request-error: bad sip_mode"):
            await rest.create_room(sip_display_name="x")
    assert len(api.calls("POST", "/rooms")) == 1


async def test_wrong_key_message_names_daily_error_not_the_key(api: FakeDailyApi) -> None:
    secret = "wrong-key-that-must-not-leak"
    async with DailyRest(secret, base_url=api.base_url) as rest:
        with pytest.raises(DailyApiError) as info:
            await rest.get_room("nope")
    assert info.value.status == 401
    assert "authentication-error" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(rest)


async def test_text_error_body_is_included(api: FakeDailyApi) -> None:
    api.fail("GET", "/rooms/*", 418, "<html>teapot</html>")
    async with client(api) as rest:
        with pytest.raises(DailyApiError, match="teapot") as info:
            await rest.get_room("r")
    assert info.value.body == "<html>teapot</html>"


async def test_timeout_is_retried_then_reported(api: FakeDailyApi) -> None:
    api.delay_s = 0.5
    async with client(api, timeout=0.05, retries=1) as rest:
        with pytest.raises(DailyApiError, match=r"after 2 attempt.*timed out") as info:
            await rest.get_room("r")
    assert info.value.status is None


async def test_network_error_is_reported() -> None:
    fake = FakeDailyApi()
    url = await fake.start()
    await fake.stop()  # nothing listens there any more
    async with DailyRest(API_KEY, base_url=url, retries=1, backoff=0.01) as rest:
        with pytest.raises(DailyApiError, match="network error"):
            await rest.delete_room("r")


async def test_unexpected_room_json_is_an_error(api: FakeDailyApi) -> None:
    api.fail("POST", "/rooms", 200, {"surprise": True})
    async with client(api) as rest:
        with pytest.raises(DailyApiError, match="unexpected room"):
            await rest.create_room()


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAILY_API_URL", "http://127.0.0.1:9/v1/")
    assert DailyRest(API_KEY).base_url == "http://127.0.0.1:9/v1"
    monkeypatch.delenv("DAILY_API_URL")
    assert DailyRest(API_KEY).base_url == "https://api.daily.co/v1"


def test_missing_key_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="DAILY_API_KEY"):
        DailyRest("")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://acme.daily.co/standup", "standup"),
        ("https://acme.daily.co/standup/", "standup"),
        ("https://acme.daily.co/my-room_2?t=1", "my-room_2"),
        ("http://127.0.0.1:8080/local", "local"),
    ],
)
def test_room_name_from_url(url: str, name: str) -> None:
    assert room_name_from_url(url) == name


@pytest.mark.parametrize(
    "url",
    [
        "standup",
        "https://acme.daily.co/",
        "https://acme.daily.co/a/b",
        "ftp://x/y",
        "https://acme.daily.co/ro%20om",
    ],
)
def test_room_name_from_bad_url(url: str) -> None:
    with pytest.raises(UsageError, match="not a Daily room URL"):
        room_name_from_url(url)
