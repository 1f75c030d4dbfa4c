"""Observers of a call's events (the console, the transcript, recorders, plugins'
``botrun_observe``): one that raises is reported, counted and survived.

A failing observer is one WARNING line naming it the first time (then every
:data:`LOG_EVERY`-th failure, with the count), its traceback at DEBUG on those lines; the
call goes on and the other observers still get the event. :class:`PluginObservers` calls
each plugin's ``botrun_observe`` on its own, so one plugin's failure is told under its name
(the plugin, its distribution and the function) and never keeps the event from the others.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("botrun.observers")

#: After the first failure of an observer, every this-many-th is logged (with the count).
LOG_EVERY = 100


def observer_name(obs: Any) -> str:
    """What an observer is called in the log: its ``observer_name`` if it has one, else
    ``module.qualname`` of a function or of the object's class."""
    named = getattr(obs, "observer_name", None)
    if isinstance(named, str):
        return named
    target = obs if hasattr(obs, "__qualname__") else type(obs)
    module = getattr(target, "__module__", None)
    qual = getattr(target, "__qualname__", None) or repr(obs)
    return f"{module}.{qual}" if module else qual


class ObserverFailures:
    """Counts each observer's failures and logs them (see the module's docstring)."""

    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}

    def failed(self, key: Any, name: Callable[[], str], kind: str, exc: BaseException) -> None:
        n = self.counts[key] = self.counts.get(key, 0) + 1
        if n != 1 and n % LOG_EVERY:
            return
        label = name()
        why = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        if n == 1:
            log.warning(
                "observer %s failed on %s: %s (the call goes on; further failures are "
                "counted, every %dth logged)",
                label,
                kind,
                why,
                LOG_EVERY,
            )
        else:
            log.warning(
                "observer %s has failed %d times; the latest on %s: %s", label, n, kind, why
            )
        log.debug("observer %s traceback", label, exc_info=(type(exc), exc, exc.__traceback__))


class PluginObservers:
    """The ``botrun_observe`` hooks of a plugin manager's plugins as one observer: each
    plugin's is called on its own, in pluggy's order, its failures told under its name.
    Plugins registered after this is made are included (the hooks are read per event)."""

    observer_name = "plugins' botrun_observe"

    def __init__(self, pm: Any, failures: ObserverFailures | None = None) -> None:
        self._pm = pm
        self.failures = failures or ObserverFailures()

    def __call__(self, event: Any) -> None:
        for impl in reversed(self._pm.hook.botrun_observe.get_hookimpls()):  # pluggy: LIFO
            try:
                impl.function(**{arg: event for arg in impl.argnames})
            except Exception as exc:
                self.failures.failed(
                    (impl.plugin_name, impl.function),
                    functools.partial(plugin_label, impl),
                    getattr(event, "kind", type(event).__name__),
                    exc,
                )


def plugin_label(impl: Any) -> str:
    """``plugin 'NAME' (distribution DIST, module.function)`` for a pluggy hook impl; the
    distribution is the installed package whose ``botrun`` entry point named the plugin."""
    from importlib.metadata import entry_points

    from .plugins import GROUP

    dist = None
    for ep in entry_points(group=GROUP):
        if ep.name == impl.plugin_name and ep.dist is not None:
            dist = ep.dist.name
            break
    func = observer_name(impl.function)
    where = f"distribution {dist}, {func}" if dist else func
    return f"plugin '{impl.plugin_name}' ({where})"
