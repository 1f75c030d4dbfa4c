"""The Agora transport through the published SDK wrapper of every supported version (fetched
from the package registry, unmodified) over a fake native library (tests/agora_double):
join, per-user audio from the native thread, the bot's voice pushed, padded and
interrupted, tokens, initialisation, failures, the SDK's stdout prints and the release
order. A recording TransportEvents stands in for the bridge."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from agora_double.harness import (  # the fixture is used by name
    APP_ID,
    CERTIFICATE,
    CHANNEL,
    RELEASE_ORDER,
    RecordingEvents,
    cloud_fixture,  # noqa: F401
    released,
    speech_pcm16k,
    until,
)

from botrun.core.errors import TransportError
from botrun.transports.agora.transport import AgoraTransport


def transport(**kw: Any) -> AgoraTransport:
    kw.setdefault("app_id", APP_ID)
    kw.setdefault("channel", CHANNEL)
    kw.setdefault("join_timeout_s", 5.0)
    return AgoraTransport(**kw)


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("agora-speech")
    return {
        "ann": speech_pcm16k("Hello, can you hear me?", d).tobytes(),
        "bob": speech_pcm16k("The train leaves at nine.", d).tobytes(),
    }


#: Native calls the fake answers with the C default (0 / nothing): setters whose effect
#: botrun does not depend on. Anything else unmodelled shows up here and fails the tests.
DEFAULTED_OK = {
    "agora_local_audio_track_set_enabled",
    "agora_local_audio_track_set_max_bufferd_frame_number",
    "agora_local_audio_track_set_send_delay_ms",
    "agora_local_user_set_audio_encoder_config",
    "agora_local_user_set_audio_scenario",
    "agora_parameter_set_int",
    "agora_parameter_set_parameters",
}


def assert_clean(cloud: Any) -> None:
    assert cloud.violations == []
    assert cloud.callback_errors == []
    assert cloud.defaulted <= DEFAULTED_OK


async def test_two_users_audio_arrives_per_user_from_the_native_thread(
    cloud: Any, voices: dict[str, bytes]
) -> None:
    cloud.add_project(APP_ID)  # no certificate: the App ID is the token
    cloud.user_joins(CHANNEL, "101")  # already in the channel
    events = RecordingEvents(asyncio.get_running_loop())
    t = transport()
    await t.join(events)
    assert t.bot_participant_id is not None and t.bot_participant_id not in ("101", "102")
    cloud.user_joins(CHANNEL, "102")
    cloud.user_speaks(CHANNEL, "101", voices["ann"])
    cloud.user_speaks(CHANNEL, "102", voices["bob"])
    assert await until(
        lambda: all(
            len(events.heard.get(u, b"")) >= len(voices[n])
            for u, n in (("101", "ann"), ("102", "bob"))
        )
    )
    cloud.user_leaves(CHANNEL, "102")
    assert await until(lambda: events.left == [("102", "left")])
    await t.leave()

    assert sorted(events.joined) == ["101", "102"]
    # Every byte each user said reached the bridge under that user's id, in order.
    assert bytes(events.heard["101"][: len(voices["ann"])]) == voices["ann"]
    assert bytes(events.heard["102"][: len(voices["bob"])]) == voices["bob"]
    assert events.rates == {16000}
    for uid in ("101", "102"):
        assert events.order.index(("joined", uid)) < events.order.index(("audio", uid))
    # Callbacks came from native threads, never the event loop's.
    assert threading.get_ident() not in events.threads
    assert events.threads <= cloud.callback_threads
    assert released(cloud.trace) == RELEASE_ORDER
    assert t.callback_stats.callback_errors == 0
    assert_clean(cloud)


async def test_bot_own_uid_is_ignored(cloud: Any) -> None:
    cloud.add_project(APP_ID)
    events = RecordingEvents(asyncio.get_running_loop())
    t = transport(uid=4242)
    await t.join(events)
    assert t.bot_participant_id == "4242"
    cloud.user_joins(CHANNEL, "4242")  # e.g. the SDK echoing the bot's own uid
    cloud.user_speaks(CHANNEL, "4242", b"\x01\x00" * 1600)
    cloud.user_joins(CHANNEL, "7")
    assert await until(lambda: events.joined == ["7"])
    assert await until(lambda: t.callback_stats.own_frames_ignored >= 10)
    await t.leave()
    assert "4242" not in events.heard
    assert_clean(cloud)


async def test_bot_voice_is_pushed_padded_and_interrupted(cloud: Any) -> None:
    cloud.add_project(APP_ID)
    t = transport()
    await t.join(RecordingEvents(asyncio.get_running_loop()))
    chunk = bytes(range(256)) * 2 + bytes(128)  # 640 bytes = 20 ms at 16 kHz mono
    for _ in range(5):
        t.write_audio(chunk)  # bytes in: the transport hands the wrapper a bytearray
    assert t.push_stats.chunks == 5 and t.push_stats.push_errors == 0
    assert await until(lambda: len(cloud.heard(CHANNEL)) == 5 * 640)
    assert cloud.heard(CHANNEL) == chunk * 5

    for _ in range(50):  # one second queued inside the SDK's track
        t.write_audio(chunk)
    n = len(cloud.trace)
    t.flush_audio()
    before = len(cloud.heard(CHANNEL))
    # interrupt_audio in the AI-server scenario: unpublish (drops the queue) + publish.
    assert cloud.trace[n:] == ["agora_local_user_unpublish_audio", "agora_local_user_publish_audio"]
    await asyncio.sleep(0.1)
    assert len(cloud.heard(CHANNEL)) - before <= 640  # at most the frame in flight
    t.write_audio(b"\x01" * 10)  # not whole milliseconds: padded, not rejected with -1002
    assert t.push_stats.padded == 1 and t.push_stats.push_errors == 0
    assert await until(lambda: cloud.heard(CHANNEL).endswith(b"\x01" * 10 + b"\x00" * 22))
    await t.leave()
    t.write_audio(chunk)  # after leave: dropped, no SDK call
    t.flush_audio()
    assert t.push_stats.dropped_not_joined == 1
    assert released(cloud.trace) == RELEASE_ORDER
    assert_clean(cloud)


async def test_the_wrappers_buffer_rules(cloud: Any) -> None:
    """The published sender wraps the data with ctypes from_buffer: bytes is not writable;
    lengths must be whole milliseconds; interrupt_audio reports -1000 even when it worked."""
    cloud.add_project(APP_ID)
    t = transport()
    await t.join(RecordingEvents(asyncio.get_running_loop()))
    conn = t._conn
    with pytest.raises(TypeError):
        conn.push_audio_pcm_data(b"\x00" * 320, 16000, 1)
    assert conn.push_audio_pcm_data(bytearray(330), 16000, 1) == -1002
    assert conn.interrupt_audio() == -1000
    await t.leave()
    assert_clean(cloud)


async def test_certificate_builds_a_token_and_renews_it_off_the_callback_thread(
    cloud: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    cloud.add_project(APP_ID, CERTIFICATE)
    cloud.token_warning_s = 1.5  # the 4 s token is renewed 1.5 s before it expires
    events = RecordingEvents(asyncio.get_running_loop())
    t = transport(certificate=CERTIFICATE, uid=55, token_expiry_s=4)
    await t.join(events)
    assert await until(lambda: len(cloud.renewed_tokens) == 1, timeout=5)
    assert t.push_stats.renewals == 1
    assert cloud.renewed_tokens[0].startswith("007")
    assert "renewed" in caplog.text and cloud.renewed_tokens[0] not in caplog.text
    assert events.ended_calls == []
    await t.leave()
    assert cloud.trace.index("agora_rtc_conn_renew_token") < cloud.trace.index(
        "agora_rtc_conn_disconnect"
    )
    assert_clean(cloud)


async def test_expired_token_ends_the_call_with_a_clear_error(cloud: Any) -> None:
    cloud.add_project(APP_ID, CERTIFICATE)
    cloud.token_warning_s = 0.0  # no warning: the token simply runs out
    events = RecordingEvents(asyncio.get_running_loop())
    t = transport(certificate=CERTIFICATE, token_expiry_s=2)
    await t.join(events)
    assert await until(lambda: bool(events.ended_calls), timeout=5)
    _reason, error = events.ended_calls[0]
    assert error is not None and "token expired" in error
    await t.leave()
    assert released(cloud.trace) == RELEASE_ORDER
    assert_clean(cloud)


@pytest.mark.parametrize(
    ("project_cert", "given_cert", "message"),
    [
        (CERTIFICATE, None, "rejected the token"),  # project needs a token, none built
        (CERTIFICATE, "00" * 16, "rejected the token"),  # wrong certificate
        (None, CERTIFICATE, "rejected the token"),  # project without certificate
    ],
)
async def test_token_problems_fail_the_join(
    cloud: Any, project_cert: str | None, given_cert: str | None, message: str
) -> None:
    cloud.add_project(APP_ID, project_cert)
    t = transport(certificate=given_cert)
    with pytest.raises(TransportError, match=message):
        await t.join(RecordingEvents(asyncio.get_running_loop()))
    assert released(cloud.trace) == RELEASE_ORDER
    await t.leave()  # idempotent after a failed join
    assert released(cloud.trace) == RELEASE_ORDER
    assert_clean(cloud)


async def test_unknown_app_id_fails_the_join(cloud: Any) -> None:
    t = transport()
    with pytest.raises(TransportError, match="rejected the App ID"):
        await t.join(RecordingEvents(asyncio.get_running_loop()))
    assert released(cloud.trace) == RELEASE_ORDER


async def test_connect_refused_and_join_timeout(cloud: Any) -> None:
    cloud.add_project(APP_ID)
    cloud.connect_return = -2
    with pytest.raises(TransportError, match="refused"):
        await transport().join(RecordingEvents(asyncio.get_running_loop()))
    cloud.connect_return = 0
    cloud.never_answer = True
    with pytest.raises(TransportError, match="timed out"):
        await transport(join_timeout_s=0.3).join(RecordingEvents(asyncio.get_running_loop()))
    assert released(cloud.trace) == RELEASE_ORDER * 2
    assert_clean(cloud)


async def test_kicked_bot_ends_the_call(cloud: Any) -> None:
    cloud.add_project(APP_ID)
    events = RecordingEvents(asyncio.get_running_loop())
    t = transport()
    await t.join(events)
    cloud.kick(CHANNEL)
    assert await until(lambda: bool(events.ended_calls))
    assert "removed from the channel" in (events.ended_calls[0][1] or "")
    await t.leave()
    assert released(cloud.trace) == RELEASE_ORDER
    assert_clean(cloud)


async def test_cancelled_join_releases_in_order(cloud: Any) -> None:
    """Ctrl-C while joining: asyncio cancels the join; everything is still released."""
    cloud.add_project(APP_ID)
    cloud.never_answer = True
    t = transport()
    task = asyncio.create_task(t.join(RecordingEvents(asyncio.get_running_loop())))
    assert await until(lambda: "agora_rtc_conn_connect" in cloud.trace)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert released(cloud.trace) == RELEASE_ORDER
    await t.leave()
    assert released(cloud.trace) == RELEASE_ORDER
    assert_clean(cloud)


async def test_callback_exceptions_never_reach_the_sdk(cloud: Any) -> None:
    cloud.add_project(APP_ID)
    events = RecordingEvents(asyncio.get_running_loop(), fail_audio=True)
    t = transport()
    await t.join(events)
    cloud.user_joins(CHANNEL, "9")
    cloud.user_speaks(CHANNEL, "9", b"\x00\x01" * 800)
    assert await until(lambda: t.callback_stats.callback_errors >= 5)
    await t.leave()
    assert cloud.callback_errors == []  # nothing escaped into the (fake) native layer


async def test_observers_subclass_the_sdk_interfaces(cloud: Any) -> None:
    from botrun.transports.agora.observers import Relay, observer_classes
    from botrun.transports.agora.sdk import load_sdk

    sdk = load_sdk()
    classes = observer_classes(sdk)
    relay = Relay(asyncio.get_running_loop(), RecordingEvents(asyncio.get_running_loop()), None)
    conn_obs = classes.connection(relay)
    assert isinstance(conn_obs, sdk.IRTCConnectionObserver)
    assert isinstance(classes.audio_frame(relay), sdk.IAudioFrameObserver)
    assert isinstance(classes.local_user(relay), sdk.IRTCLocalUserObserver)
    # The SDK compares this value with >= 0: it must be an int, -1 = keep the scenario.
    assert conn_obs.on_aiqos_capability_missing(None, 3) == -1
    assert conn_obs.on_connecting(None, None, 0) is None  # inherited no-op from the SDK


def test_invalid_settings_are_usage_errors() -> None:
    from botrun.core.errors import UsageError

    with pytest.raises(UsageError, match="App ID"):
        AgoraTransport(app_id="not-an-app-id", channel=CHANNEL)
    with pytest.raises(UsageError, match="AGORA_APP_CERTIFICATE"):
        AgoraTransport(app_id=APP_ID, channel=CHANNEL, certificate="short")
    with pytest.raises(UsageError, match="channel name"):
        AgoraTransport(app_id=APP_ID, channel="x" * 65)
    with pytest.raises(UsageError, match="uid"):
        AgoraTransport(app_id=APP_ID, channel=CHANNEL, uid=2**32)


def test_make_token_without_certificate_is_the_app_id(tmp_path: Path) -> None:
    t = AgoraTransport(app_id=APP_ID, channel=CHANNEL)
    assert t.make_token() == APP_ID


# ---------------------------------------------------------------------- issue 14 items 1-2
@pytest.mark.parametrize(("init", "extension"), [(0, -4), (-7, 0)])
async def test_initialisation_is_judged_by_the_service_itself(
    cloud: Any, init: int, extension: int, caplog: pytest.LogCaptureFixture
) -> None:
    """2.4.x's initialize() returns the result of enabling extensions, not of initialising
    (2.3.x returns the init result): botrun must judge by the service's own state."""
    cloud.add_project(APP_ID)
    cloud.init_return, cloud.extension_return = init, extension
    t = transport()
    if init == 0:  # initialised; an optional extension failed: the call goes on
        await t.join(RecordingEvents(asyncio.get_running_loop()))
        assert t._joined
        await t.leave()
        assert released(cloud.trace) == RELEASE_ORDER
    else:  # the service did not initialise: say so, and go no further
        with pytest.raises(TransportError, match=r"failed to initialize \(error -7\)"):
            await t.join(RecordingEvents(asyncio.get_running_loop()))
        assert "agora_rtc_conn_create" not in cloud.trace
    assert cloud.violations == [] and cloud.callback_errors == []


async def test_sdk_prints_stay_off_the_console(
    cloud: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wrapper print()s from native threads (capabilities, and in 2.4.x every remote
    audio subscription): those lines go to botrun's log, the console keeps its own."""
    from botrun.core import events as ev
    from botrun.core.console import Console

    caplog.set_level("DEBUG")
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stdout", screen)
    console = Console(tty=False)  # like run_call: it takes sys.stdout before the join
    cloud.add_project(APP_ID)
    events = RecordingEvents(asyncio.get_running_loop())
    t = transport()
    await t.join(events)
    cloud.user_joins(CHANNEL, "101")
    assert await until(lambda: "subscribed to audio of uid 101" in caplog.text)
    console(ev.ParticipantJoined("101"))
    print("after the SDK's lines, botrun's own print still reaches the screen")
    await t.leave()
    console.close()

    shown = screen.getvalue()
    assert "+ 101 joined" in shown and "botrun's own print" in shown
    sdk_lines = ["update audio scenario to False"]
    if cloud.version.startswith("2.3."):
        sdk_lines += [
            "ConnCB _on_capabilities_changed",
            "Capability[0] - Type: 19",
            "Item[0] - ID: 1, Name: SUPPORT",
        ]
    else:
        sdk_lines += ["LocalUser _set_apm_filter_properties: -1001"]
    for line in sdk_lines:
        assert line not in shown
        assert line in caplog.text  # kept, in the log
    assert sys.stdout is screen  # restored at leave
    assert_clean(cloud)


async def test_channel_without_ai_qos_keeps_the_scenario(
    cloud: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The wrapper asks botrun's observer what to do when a client lacks AI QoS and compares
    the answer with >= 0; botrun keeps the AI-server scenario (-1)."""
    caplog.set_level("INFO")
    cloud.add_project(APP_ID)
    cloud.aiqos_supported = False
    t = transport()
    await t.join(RecordingEvents(asyncio.get_running_loop()))
    assert await until(lambda: "lacks AI QoS support" in caplog.text)
    await t.leave()
    # update_audio_scenario was not called: the only unpublish is the one of disconnect.
    assert cloud.trace.count("agora_local_user_unpublish_audio") == 1
    assert_clean(cloud)
