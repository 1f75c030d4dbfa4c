"""Lazy, checked import of agora-python-server-sdk (2.3+/2.4 API generation).

Importing ``agora.rtc`` is not harmless: it checks the native library, may try to download
it, and calls ``sys.exit(1)`` when it cannot load it. So botrun imports it only when an
Agora call starts, and turns every way it can fail (not installed, native library missing,
the older 2.2.x API, a newer untested major) into one :class:`UsageError` that says what is
wrong and what to install.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

from botrun.core.errors import UsageError

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


def load_sdk() -> AgoraSDK:
    """Import and check the SDK; every failure becomes one clear UsageError (exit 2)."""
    version = installed_version()
    if version is not None:
        check_version(version)
    try:
        base = _import("agora.rtc.agora_base")
        service_mod = _import("agora.rtc.agora_service")
        conn_mod = _import("agora.rtc.rtc_connection")
        conn_obs = _import("agora.rtc.rtc_connection_observer")
        frame_obs = _import("agora.rtc.audio_frame_observer")
        user_obs = _import("agora.rtc.local_user_observer")
    except SystemExit:
        # agora/__init__.py and agora/rtc/__init__.py call sys.exit(1) when the native
        # library cannot be loaded or downloaded.
        raise UsageError(
            "the Agora SDK is installed but its native library could not be loaded (it is "
            "downloaded from Agora's CDN at install or first import; the machine may be "
            "offline or the platform unsupported: Linux x86_64/aarch64 or macOS). Reinstall "
            f"with network access: {INSTALL_HINT}"
        ) from None
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "agora":
            raise UsageError(
                f"the Agora transport needs the Agora Python server SDK: {INSTALL_HINT}"
            ) from None
        raise UsageError(
            f"the Agora SDK could not be imported ({exc}); reinstall it: {INSTALL_HINT}"
        ) from None
    except Exception as exc:  # OSError from ctypes, URLError from download, ...
        raise UsageError(
            f"the Agora SDK could not be loaded ({type(exc).__name__}: {exc}); "
            f"reinstall it: {INSTALL_HINT}"
        ) from None
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
