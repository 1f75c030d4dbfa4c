"""A ``daily`` call job on a worker: the room (a SIP room for a dial-in, unless the job names
one), the bot's owner token, and ``botrun daily --room ...`` with the token in its
environment (never argv, never Redis). The room the worker made is deleted after the bot.
This is what one-machine serve does in its request handler (bots/serve/app.py), moved to
where the call runs so that no secret travels through the queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botrun.bots.fleet.jobs import CallJob

    from .engine import WorkerSettings

#: Rooms outlive a call's maximum duration by this much (as in serve).
ROOM_EXP_MARGIN_S = 300.0


def make_prepare(api_key: str, base_url: str | None, bot_name: str = "botrun") -> Any:
    """The ``daily`` job kind bound to a Daily API key."""

    async def prepare(
        job: CallJob, settings: WorkerSettings
    ) -> tuple[list[str], dict[str, str | None], Callable[[], Awaitable[None]] | None]:
        from botrun.transports.daily.rest import DailyRest, room_name_from_url

        options = dict(job.options)
        room_url = options.pop("room", None)
        call_id = options.pop("dialin_call_id", None)
        call_domain = options.pop("dialin_call_domain", None)
        if options:
            raise ValueError(f"unexpected daily job options: {', '.join(sorted(options))}")
        exp_s = settings.bot_max_duration_s + ROOM_EXP_MARGIN_S
        api = DailyRest(api_key, base_url=base_url)
        owned: str | None = None
        try:
            if room_url is None:
                room = await api.create_room(
                    exp_s=exp_s,
                    sip_display_name=(job.caller or "caller") if call_id else None,
                )
                owned, room_url = room.name, room.url
            token = await api.create_meeting_token(
                owned or room_name_from_url(str(room_url)),
                owner=True,
                exp_s=exp_s,
                user_name=bot_name,
            )
        except BaseException:
            if owned is not None:
                await api.delete_room(owned)
            await api.close()
            raise
        await api.close()
        argv = ["daily", "--room", str(room_url)]
        if call_id and call_domain:
            argv += ["--dialin-call-id", str(call_id), "--dialin-call-domain", str(call_domain)]
        if settings.config:
            argv += ["--config", settings.config]

        async def cleanup() -> None:
            if owned is not None:
                async with DailyRest(api_key, base_url=base_url) as rest:
                    await rest.delete_room(owned)

        return argv, {"DAILY_MEETING_TOKEN": token}, cleanup

    return prepare
