"""What ``botrun serve`` checks before it answers Twilio calls (each problem one line)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botrun.core.config import BotConfig
    from botrun.core.secrets import Secrets

    from .twilio_routes import TwilioCalls


def twilio_calls(
    secrets: Secrets, cfg: BotConfig, agent_key: str | None, max_calls: int
) -> TwilioCalls:
    """The Twilio call registry serve runs: settings (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN,
    PUBLIC_URL), the config's ``[twilio]`` table and its tools, checked now."""
    from botrun.bots.runner import bot_hooks, bot_tools
    from botrun.core.config import transport_options
    from botrun.transports.twilio import settings as tw_settings
    from botrun.transports.twilio.plugin import SPEC

    tw_settings.require_package()  # before twilio_routes, which imports the package
    from botrun.transports.twilio.rest import TwilioRest

    from .twilio_routes import TwilioCalls

    settings = tw_settings.load(secrets, "to answer Twilio calls")
    options = transport_options(SPEC, cfg, {})
    bot_tools(cfg)  # a tool that cannot load fails now, not on the first call
    hooks = bot_hooks(cfg)
    rest = TwilioRest(settings.account_sid, settings.auth_token, settings.api_url)
    return TwilioCalls(
        settings,
        cfg,
        api_key=agent_key,
        max_calls=max_calls,
        rest=rest,
        transcode=bool(options.get("transcode")),
        hooks=hooks,
    )
