"""Lazy, checked import of agora-python-server-sdk (2.3+/2.4 API generation).

Importing ``agora.rtc`` is not harmless: it checks the native library, may try to download
it from Agora's CDN (raising ``URLError`` offline), calls ``sys.exit(1)`` when it cannot
load it, logs ERROR lines on every import (2.4.x) and sets
``ssl._create_default_https_context`` to an *unverified* context for the whole process. So
botrun imports it only when an Agora call starts, with the SDK's loggers captured (their
lines go to botrun's log at DEBUG), restores the SSL default afterwards (also when the
import fails), and turns every way it can fail (not installed, native library missing or not
downloadable, the older 2.2.x API, a newer untested major) into one :class:`UsageError` that
says what is wrong and what to do.

:func:`initialize_service` judges ``AgoraService.initialize`` by the service's own state:
in 2.4.x its return value is the result of enabling an extension, not of initialising.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from botrun.core.errors import TransportError, UsageError

log = logging.getLogger(__name__)

DISTRIBUTION = "agora-python-server-sdk"
SUPPORTED = ((2, 3), (2, 5))  # [min, max) as (major, minor)
INSTALL_HINT = "pip install 'botrun[agora]'  (agora-python-server-sdk>=2.3,<2.5)"


@dataclass(frozen=True)
class AgoraSDK:
    """The SDK names botrun uses, resolved once. Attribute access stays typed-loose on
    purpose: the SDK ships no type information."""

    version: str
    base: ModuleType  # agora.rtc.agora_base: config dataclasses and enums
    AgoraService: Any
    RTCConnection: Any
    IRTCConnectionObserver: Any
    IAudioFrameObserver: Any
    IRTCLocalUserObserver: Any


def parse_version(text: str) -> tuple[int, ...]:
    """Leading numeric parts of a version string: ``"2.4.10"`` -> ``(2, 4, 10)``."""
    parts: list[int] = []
    for piece in text.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


def installed_version() -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def check_version(version: str) -> None:
    """Raise UsageError unless ``version`` is in the supported range."""
    parsed = parse_version(version)[:2]
    low, high = SUPPORTED
    if parsed < low:
        raise UsageError(
            f"agora-python-server-sdk {version} is installed, but botrun needs the 2.3+ API "
            f"(2.2.x and older have a different connection API). Upgrade: {INSTALL_HINT}"
        )
    if parsed >= high:
        raise UsageError(
            f"agora-python-server-sdk {version} is installed, but botrun is tested with "
            f"2.3.x-2.4.x only. Install a supported version: {INSTALL_HINT}"
        )


def _import(name: str) -> ModuleType:
    return importlib.import_module(name)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_logs(name: str) -> Iterator[list[logging.LogRecord]]:
    """Everything logger ``name`` (and its children) logs meanwhile, kept from the user's
    handlers; the logger's level, propagation and handlers are restored afterwards."""
    logger = logging.getLogger(name)
    handler = _Records()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _last_error(records: list[logging.LogRecord]) -> str:
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    return f" The SDK said: {errors[-1]}" if errors else ""


def load_sdk() -> AgoraSDK:
    """Import and check the SDK; every failure becomes one clear UsageError (exit 2)."""
    import ssl
    import urllib.error

    version = installed_version()
    if version is not None:
        check_version(version)
    https_context = ssl._create_default_https_context
    try:
        with captured_logs("agora") as records:
            base = _import("agora.rtc.agora_base")
            service_mod = _import("agora.rtc.agora_service")
            conn_mod = _import("agora.rtc.rtc_connection")
            conn_obs = _import("agora.rtc.rtc_connection_observer")
            frame_obs = _import("agora.rtc.audio_frame_observer")
            user_obs = _import("agora.rtc.local_user_observer")
    except SystemExit:
        # agora/__init__.py and agora/rtc/__init__.py call sys.exit(1) when the native
        # library cannot be loaded.
        raise UsageError(
            "the Agora SDK is installed but its native library could not be loaded (it is "
            "downloaded from Agora's CDN at install or first import; the platform may be "
            "unsupported: Linux x86_64/aarch64 or macOS). Reinstall with network access: "
            f"{INSTALL_HINT}.{_last_error(records)}"
        ) from None
    except urllib.error.URLError as exc:
        # The first import downloads the native library (tens of MB) from download.agora.io.
        raise UsageError(
            "the Agora SDK could not download its native library from Agora's CDN "
            f"(download.agora.io): {exc.reason}. The SDK fetches it on first import: run "
            "botrun once with internet access (or reinstall the SDK where the CDN is "
            f"reachable): {INSTALL_HINT}"
        ) from None
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "agora":
            raise UsageError(
                f"the Agora transport needs the Agora Python server SDK: {INSTALL_HINT}"
            ) from None
        raise UsageError(
            f"the Agora SDK could not be imported ({exc}); reinstall it: {INSTALL_HINT}"
        ) from None
    except Exception as exc:  # OSError from ctypes, ...
        raise UsageError(
            f"the Agora SDK could not be loaded ({type(exc).__name__}: {exc}); "
            f"reinstall it: {INSTALL_HINT}"
        ) from None
    finally:
        # The SDK turns off certificate checks for every HTTPS request of the process.
        ssl._create_default_https_context = https_context
    for record in records:
        log.debug("agora SDK import: %s", record.getMessage())
    conn_cls = getattr(conn_mod, "RTCConnection", None)
    if conn_cls is None or not hasattr(conn_cls, "push_audio_pcm_data"):
        found = version or "an unknown version"
        raise UsageError(
            f"the installed Agora SDK ({found}) has the old 2.2.x API (no "
            f"RTCConnection.push_audio_pcm_data); botrun needs 2.3+: {INSTALL_HINT}"
        )
    sdk = AgoraSDK(
        version=version or "unknown",
        base=base,
        AgoraService=service_mod.AgoraService,
        RTCConnection=conn_cls,
        IRTCConnectionObserver=conn_obs.IRTCConnectionObserver,
        IAudioFrameObserver=frame_obs.IAudioFrameObserver,
        IRTCLocalUserObserver=user_obs.IRTCLocalUserObserver,
    )
    log.debug("loaded agora-python-server-sdk %s", sdk.version)
    return sdk


_INIT_RESULT = re.compile(r"Initialization result: (-?\d+)")


def initialize_service(service: Any, config: Any, *, log_path: Path) -> None:
    """``service.initialize(config)``, judged by the service's own state.

    2.3.x returns the result of ``agora_service_initialize``; 2.4.x returns the result of
    enabling its last extension instead, and records the real outcome in
    ``service.inited`` (and in a DEBUG line, where botrun reads the error code from).
    Raises TransportError naming the initialisation failure; an extension that failed on an
    initialised service is a warning.
    """
    where = f"the SDK's own log is in {log_path.parent}"
    with captured_logs("agora.rtc.agora_service") as records:
        try:
            ret = service.initialize(config)
        except Exception as exc:  # e.g. AttributeError inside the wrapper after a failure
            raise TransportError(
                f"the Agora SDK failed to initialize ({type(exc).__name__}: {exc}); {where}"
            ) from None
    for record in records:
        if record.levelno >= logging.WARNING:
            log.warning("agora SDK: %s", record.getMessage())
    inited = getattr(service, "inited", None)
    ok = inited if isinstance(inited, bool) else ret == 0
    if not ok:
        code: Any = ret
        for record in records:
            match = _INIT_RESULT.search(record.getMessage())
            if match:
                code = int(match.group(1))
        raise TransportError(
            f"the Agora SDK failed to initialize (error {code}): check AGORA_APP_ID; {where}"
        )
    if ret != 0:
        log.warning(
            "agora: the SDK initialized, but enabling one of its extensions failed "
            "(error %s); continuing without it",
            ret,
        )
