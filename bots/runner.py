"""Runs one transport command: config + secrets + transport + bridge, with clean exits.

The runner owns what belongs to the process, not the call: SIGINT/SIGTERM handlers (they
call ``Bridge.stop``) and the console (an observer it attaches; the bridge never prints)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botrun.core.config import (
    BotConfig,
    apply_overrides,
    check_transport_tables,
    load_config,
    transport_options,
)
from botrun.core.plugin_types import TransportContext, TransportSpec
from botrun.core.secrets import Secrets, mask_url, register_secret

log = logging.getLogger("botrun")

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass
class SharedOptions:
    config: Path | None = None
    agent_url: str | None = None
    transcript: Path | None = None
    log_level: str = "warning"
    name: str | None = None
    backend: str | None = None
    record: Path | None = None


def agent_api_key(url: str, secrets: Secrets, backend: str = "assemblyai") -> str | None:
    """The key for the voice-agent service (the backend's variables, in order: Gemini takes
    GEMINI_API_KEY or GOOGLE_API_KEY). Optional for a local simulator (sent if set)."""
    from botrun.core.errors import MissingSecretError
    from botrun.core.plugins import get_backend

    spec = get_backend(backend)
    for var in spec.key_vars:
        if value := secrets.get(var):
            return value
    host = urlparse(url).hostname or ""
    if host in LOCAL_HOSTS:
        return None
    raise MissingSecretError(spec.key_hint, f"to connect to the voice agent at {mask_url(url)}")


def build_config(
    shared: SharedOptions, spec: TransportSpec | None, transport_names: list[str]
) -> BotConfig:
    """The config a command runs with: the model's defaults, then the transport's own
    defaults (the WAV transport leaves when its files end), then the keys the config file
    really writes (packaged files write only what they choose; default.toml writes nothing),
    then the command-line flags."""
    from botrun.core.plugins import transports

    defaults = {"bridge": dict(spec.bridge_defaults)} if spec is not None else None
    cfg = load_config(shared.config, transport_names, defaults=defaults)
    # Every installed transport's table, not just this command's: a bad [daily] table is
    # reported by `botrun wav` too, before anything runs.
    check_transport_tables(cfg, [s for n, s in transports().items() if n in transport_names])
    overrides: dict[str, Any] = {
        "agent.backend": shared.backend,
        "agent.url": shared.agent_url,
        "bot.name": shared.name,
    }
    return apply_overrides(cfg, overrides)


def transport_context(
    spec: TransportSpec,
    shared: SharedOptions,
    cli_values: dict[str, Any],
    secrets: Secrets | None = None,
) -> TransportContext:
    """The validated options and config a transport command runs with."""
    from botrun.core.plugins import transports

    secrets = secrets or Secrets()
    for opt in spec.options:
        value = cli_values.get(opt.name)
        if value is None and opt.envvar:
            value = secrets.get(opt.envvar) if opt.secret else secrets.env(opt.envvar)
            cli_values[opt.name] = value
        if opt.secret and isinstance(value, str):
            register_secret(value)
    cfg = build_config(shared, spec, list(transports()))
    options = transport_options(spec, cfg, cli_values)
    return TransportContext(options=options, config=cfg, secrets=secrets, bot_name=cfg.bot.name)


def prepare(
    spec: TransportSpec,
    shared: SharedOptions,
    cli_values: dict[str, Any],
    secrets: Secrets | None = None,
) -> tuple[TransportContext, str | None]:
    """Validate everything a transport command needs before anything connects."""
    ctx = transport_context(spec, shared, cli_values, secrets)
    return ctx, agent_api_key(ctx.config.agent.url, ctx.secrets, ctx.config.agent.backend)


def check_output_paths(shared: SharedOptions, others: dict[str, Path] | None = None) -> None:
    """No two outputs (these, ``others`` a transport writes) are one file, and --transcript's
    and --record's parent directories exist (nothing is created but the --record folder
    itself): one-line errors before anything connects."""
    from botrun.core.paths import check_output_dir, check_output_file, refuse_collisions

    refuse_collisions({**(others or {}), **written_paths(shared)})  # (first: the clearer error)
    if shared.transcript is not None:
        check_output_file(shared.transcript, "--transcript")
    if shared.record is not None:
        check_output_dir(shared.record, "--record")


def written_paths(shared: SharedOptions) -> dict[str, Path]:
    """The files a call writes (besides a transport's own), named as in an error."""
    from botrun.core.recording import FILES

    out: dict[str, Path] = {}
    if shared.transcript is not None:
        out["--transcript"] = shared.transcript
    if shared.record is not None:
        out["--record"] = shared.record
        for name in FILES:  # (report.html too: the recorder removes an earlier call's)
            out[f"--record's {name}"] = shared.record / name
    return out


def check_written_collisions(transport: Any, shared: SharedOptions) -> None:
    """No two files the command writes are one (``--output``, ``--transcript``, the
    ``--record`` folder and its files): a one-line :class:`UsageError` before anything runs."""
    from botrun.core.paths import refuse_collisions

    own = getattr(transport, "written_files", None)  # a transport that writes a file (wav)
    refuse_collisions({**(own() if own is not None else {}), **written_paths(shared)})


def run_transport(spec: TransportSpec, shared: SharedOptions, cli_values: dict[str, Any]) -> int:
    """Run ``botrun <transport>``; returns the process exit code."""
    from botrun.core.logs import setup_logging
    from botrun.core.recording import recorded_whole

    setup_logging(shared.log_level)
    ctx = transport_context(spec, shared, cli_values)
    output = ctx.options.get("output")  # a transport's own output file (wav), checked too
    check_output_paths(shared, {"--output": Path(output)} if isinstance(output, str | Path) else {})
    # Problems on this machine first (a missing input file, a missing SDK), then the key
    # for the remote service: fixing the key must not just lead to the next error.
    transport = spec.factory(ctx)
    check_written_collisions(transport, shared)
    check_written = getattr(transport, "check_written_paths", None)
    if check_written is not None:  # a transport that reads files (wav): none is overwritten
        check_written(written_paths(shared))
    key = agent_api_key(ctx.config.agent.url, ctx.secrets, ctx.config.agent.backend)
    started = time.time()
    try:
        code = run_with_transport(
            transport, ctx.config, key, shared.transcript, record=shared.record
        )
        write_error = getattr(transport, "write_error", None)  # its own file (wav's --output)
        if write_error:
            from botrun.core.errors import TransportError

            raise TransportError(write_error)
        return code
    finally:
        if (
            shared.record is not None
            and _written_since(shared.record / "events.jsonl", started)
            and recorded_whole(shared.record)  # (not one that failed during the call)
        ):
            print(f"call recorded to {shared.record} (botrun report {shared.record})", flush=True)
        recorded = getattr(transport, "recorded", None)  # a transport that records (wav)
        if recorded is not None and getattr(transport, "recorded_s", None) == 0:
            print(f"no bot audio was recorded ({recorded} holds no audio)", flush=True)
        elif recorded is not None:
            print(f"bot voice recorded to {recorded}", flush=True)


def run_with_transport(
    transport: Any,
    cfg: BotConfig,
    api_key: str | None,
    transcript: Path | None,
    console: bool = True,
    *,
    record: Path | None = None,
) -> int:
    """Run the call to its end; a failure is raised as the BotrunError the CLI prints."""
    summary = asyncio.run(call(transport, cfg, api_key, transcript, console, record=record))
    if summary.error is not None:
        raise summary.error
    return summary.exit_code


def bot_tools(cfg: BotConfig) -> Any:
    """The tools a bot with ``cfg`` offers the agent: the config's tools, then every installed
    plugin's (a :class:`~botrun.core.tools.ToolRegistry`); :class:`ConfigError` when one
    cannot be loaded. ``botrun serve`` calls this at start, so a bad tool is found before
    any call."""
    from botrun.core.builtin_tools import builtin_tools
    from botrun.core.errors import ConfigError
    from botrun.core.plugins import get_plugin_manager
    from botrun.core.tools import load_tools

    pm = get_plugin_manager()
    plugin_tools = [t for group in pm.hook.botrun_tools() for t in (group or ())]
    try:
        registry = load_tools(
            cfg.agent.tools,
            plugin_tools,
            timeout_s=cfg.agent.tool_timeout_s,
            max_result_bytes=cfg.agent.tool_result_max_bytes,
            builtins=builtin_tools(cfg),
        )
    except ConfigError as exc:  # one line naming the file, the key, the tool (issue 16 #4)
        raise ConfigError(f"{cfg.source}: [agent] tools: {exc}") from None
    check_tool_modes(cfg, registry)
    return registry


def check_tool_modes(cfg: BotConfig, registry: Any) -> None:
    """A tool's ``execution_mode`` (interactive / hold) is a Voice Agent API feature: with a
    backend that cannot honour it, a :class:`ConfigError` naming the tools (issue 18)."""
    from botrun.core.errors import ConfigError
    from botrun.core.plugins import get_backend

    spec = get_backend(cfg.agent.backend)
    if spec.tool_modes:
        return
    moded = [s.name for s in registry.specs if s.execution_mode is not None]
    if moded:
        raise ConfigError(
            f"{cfg.source}: the {spec.name} backend cannot honour execution_mode "
            f"(interactive/hold) of tool(s) {', '.join(moded)}: drop it from their @tool(...)"
        )


def bot_hooks(cfg: BotConfig) -> Any:
    """The bot's per-call hooks (``[bot] hooks``; core/hooks.py), or None;
    :class:`ConfigError` when they cannot be loaded. Checked at start, like the tools."""
    from botrun.core.hooks import config_hooks

    return config_hooks(cfg)


def action_lines(actions: Iterable[Any]) -> list[str]:
    """The summary's lines for what the bot did to the call (hang-up, transfer, DTMF, ...)."""
    out = []
    for a in actions:
        if a.action in ("say", "reply", "update"):
            continue  # heard in the transcript; the summary lists what changed the call
        status = f"failed: {a.error}" if a.error else "done"
        out.append(f"call action: {a.what} ({status})")
    return out


#: Why a signal stops the call, when whoever sent it said so first (the fleet worker's bot
#: process: :mod:`botrun.bots.worker.warm`); by default the signal's name.
_signal_reasons: dict[int, str] = {}


def set_signal_reason(sig: int, reason: str) -> None:
    """The next ``sig`` stops the call with summary reason ``reason`` (still a signal's stop:
    within the exit budget). Thread-safe enough for its one use: set, then signal."""
    _signal_reasons[sig] = reason


@contextlib.contextmanager
def stop_on_signals(bridge: Any) -> Iterator[None]:
    """SIGINT/SIGTERM ask ``bridge`` to leave (``bridge.stop(name)``: summary reason
    ``SIGINT``, exit code 130 for Ctrl-C); a second one exits at once. Installed on the
    running loop for the ``with`` block, where the platform allows it."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if bridge.stopping:
            log.warning("second %s: exiting now", sig.name)
            raise SystemExit(130)
        reason = _signal_reasons.get(sig, sig.name)
        log.info("%s: leaving the meeting", reason)
        bridge.stop(reason, interrupted=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def call(
    transport: Any,
    cfg: BotConfig,
    api_key: str | None,
    transcript: Path | None,
    console: bool = True,
    *,
    observers: Iterable[Callable[[Any], None]] = (),
    signals: bool = True,
    record: Path | None = None,
    unattended: str | None = "no call was made (nobody opened the page)",
) -> Any:
    """One call with the config's tools and every installed plugin's tools and observers.
    The runner owns the process's side: it attaches the live console (an observer writing
    from a thread of its own), turns SIGINT/SIGTERM into ``Bridge.stop``, and prints the
    end-of-call summary once the console has written everything before it. With ``record``
    the call is recorded to that directory (core/recording.py). ``unattended`` is printed when
    nobody took a call that waits for someone (the browser page); None prints nothing."""
    from botrun.core.bridge import Bridge
    from botrun.core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    tools = bot_tools(cfg)
    hooks = bot_hooks(cfg)

    from botrun.core.observers import PluginObservers

    plugin_observer = PluginObservers(pm)  # each plugin on its own, failures named

    recorder: Any = None
    if record is not None:  # (first: a folder it cannot write is a usage error, nothing open)
        from botrun.core.recording import CallRecorder, RecorderOnJoin

        if getattr(transport, "record_from_join", False):  # (it waits for someone: a page)
            recorder = RecorderOnJoin(record, transport)
        else:
            recorder = CallRecorder.for_transport(record, transport)
    screen = None
    if console:
        from botrun.core.console import Console

        screen = Console()
    # a transport that shows the call itself (the browser page) observes it too
    shows = getattr(transport, "observe", None)
    obs = [o for o in (screen, plugin_observer, shows, recorder, *observers) if o is not None]
    bridge = Bridge(
        transport,
        cfg,
        api_key=api_key,
        tools=tools,
        observers=obs,
        transcript=transcript,
        hooks=hooks,
    )
    bridge.taps = recorder
    try:
        with stop_on_signals(bridge) if signals else contextlib.nullcontext():
            summary = await bridge.run()
        if screen is not None and bridge.joined and not getattr(transport, "attached", True):
            if unattended:  # (None: the caller says what happened, e.g. botrun web's count)
                screen.print(unattended)
        elif screen is not None and bridge.joined:
            reached = summary.client_stats is not None and summary.client_stats.reached
            screen.print(summary.metrics.summary(agent_reached=reached))
            for line in action_lines(summary.actions):
                screen.print(line)
    finally:
        if screen is not None:
            await asyncio.to_thread(screen.close)  # everything on screen before we return
        if recorder is not None:
            await asyncio.to_thread(finish_recording, recorder, bridge.summary)
    log.info("call ended: %s", summary.reason or "done")
    return summary


def _written_since(path: Path, t: float) -> bool:
    try:
        return path.stat().st_mtime >= t - 1.0
    except OSError:
        return False


def finish_recording(recorder: Any, summary: Any) -> None:
    """Close a call's recording with its end line (blocking: run it in a thread)."""
    from botrun.core.recording import summary_figures

    error = str(summary.error) if summary.error is not None else None
    recorder.close(summary.reason, error, summary_figures(summary))
    failure = getattr(recorder, "failure", None)
    if failure is not None and summary.error is None:  # the call's own error comes first
        summary.error = failure
