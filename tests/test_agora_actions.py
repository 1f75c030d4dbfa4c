"""Call actions on Agora (issue 16 item 6): hanging up is leaving; transfer, DTMF and dial-out
are clear ActionUnsupported errors. Through the published SDK wrapper of every supported
version over the fake native library (tests/agora_double)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agora_double.harness import (  # the fixture is used by name
    APP_ID,
    CHANNEL,
    RELEASE_ORDER,
    RecordingEvents,
    cloud_fixture,  # noqa: F401
    released,
    until,
)

from botrun.core.errors import ActionUnsupported, CallActionError
from botrun.transports.agora.transport import AgoraTransport


def transport() -> AgoraTransport:
    return AgoraTransport(app_id=APP_ID, channel=CHANNEL, join_timeout_s=5.0)


async def test_hang_up_then_leave_takes_the_bot_out_of_the_channel(cloud: Any) -> None:
    cloud.add_project(APP_ID)
    cloud.user_joins(CHANNEL, "101")
    events = RecordingEvents(asyncio.get_running_loop())
    t = transport()
    await t.join(events)
    assert await until(lambda: events.joined == ["101"])
    assert len(cloud.channel(CHANNEL).members) == 1
    n = len(cloud.trace)
    await t.hang_up("the bot said goodbye")  # nothing beyond leaving to end on Agora
    assert cloud.trace[n:] == []
    await t.leave()  # what the bridge does after a hang-up
    assert cloud.channel(CHANNEL).members == []
    assert released(cloud.trace) == RELEASE_ORDER
    assert events.ended_calls == []  # our own leave is not an error
    assert cloud.violations == [] and cloud.callback_errors == []


@pytest.mark.parametrize(
    ("action", "args", "what"),
    [
        ("transfer", ("+14155550100",), "transfer calls"),
        ("send_dtmf", ("1#",), "send DTMF tones"),
        ("dial_out", ("+14155550100",), "dial out"),
    ],
)
async def test_phone_actions_are_unsupported_with_a_clear_message(
    action: str, args: tuple[str, ...], what: str
) -> None:
    t = transport()
    with pytest.raises(ActionUnsupported) as err:
        await getattr(t, action)(*args)
    assert isinstance(err.value, CallActionError)
    assert str(err.value) == f"the agora transport cannot {what}"
