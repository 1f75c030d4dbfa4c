"""The plugin manager: loads every entry point of group ``botrun`` (built-ins included)."""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pluggy

from . import hookspecs
from .errors import UsageError
from .plugin_types import TransportSpec

if TYPE_CHECKING:
    from .backends.base import BackendSpec

log = logging.getLogger(__name__)
GROUP = "botrun"


@lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """Every installed plugin, loaded once. A plugin that fails to import is reported and
    skipped: one broken third-party package must not take the CLI down."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    for ep in entry_points(group=GROUP):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            log.warning("plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        pm.register(plugin, name=ep.name)
    return pm


def transports() -> dict[str, TransportSpec]:
    """All transports by name, in registration order."""
    specs: dict[str, TransportSpec] = {}
    for group in reversed(get_plugin_manager().hook.botrun_transports()):
        for spec in group or ():
            if spec.name in specs:
                log.warning("transport %r is provided twice; keeping the first", spec.name)
                continue
            specs[spec.name] = spec
    return specs


def get_transport(name: str) -> TransportSpec:
    specs = transports()
    if name not in specs:
        raise UsageError(f"unknown transport {name!r}; installed: {', '.join(specs) or 'none'}")
    return specs[name]


BUILTIN_BACKENDS = "botrun.core.backends.plugin"


@lru_cache(maxsize=1)
def backends() -> dict[str, BackendSpec]:
    """All voice-agent backends by name, in registration order (the built-in ones first).
    The built-ins are an entry point like any plugin; an install whose metadata predates
    them still gets them."""
    from importlib import import_module

    pm = get_plugin_manager()
    if not any(getattr(p, "__name__", "") == BUILTIN_BACKENDS for p in pm.get_plugins()):
        pm.register(import_module(BUILTIN_BACKENDS), name="backends")
    specs: dict[str, BackendSpec] = {}
    for group in reversed(pm.hook.botrun_backends()):
        for spec in group or ():
            if spec.name in specs:
                log.warning("backend %r is provided twice; keeping the first", spec.name)
                continue
            specs[spec.name] = spec
    return specs


def get_backend(name: str) -> BackendSpec:
    specs = backends()
    if name not in specs:
        raise UsageError(f"unknown backend {name!r}; installed: {', '.join(specs) or 'none'}")
    return specs[name]
