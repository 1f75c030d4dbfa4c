"""A ``wav`` call job on a worker: its file paths are confined to the folder the worker's
operator chose (``botrun worker --files DIR``). An API client of the front door names files
relative to that folder; an absolute path, or one that leaves it (``..``, a symlink), is
refused, so a job can neither read nor write anywhere else on the worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botrun.bots.fleet import jobs

if TYPE_CHECKING:
    from .engine import WorkerSettings

#: The job options (the wav transport's and the shared ones) that name files.
PATH_OPTIONS = ("input", "output", "transcript", "record")
#: Every option a wav job may set (no --config: a config's tools are code; no --agent-url:
#: the operator's config chooses the agent).
ALLOWED = frozenset({"at", "participant", "phone", "speed", "dtmf", "rate", "name", *PATH_OPTIONS})

Prepare = Callable[
    [jobs.CallJob, "WorkerSettings"],
    Awaitable[tuple[list[str], dict[str, str | None], Callable[[], Awaitable[None]] | None]],
]


def confine(root: Path, name: str, value: Any) -> str:
    """``value`` (a path relative to ``root``) as an absolute path inside ``root``, or a
    :class:`ValueError` naming the option."""
    text = str(value)
    rel = Path(text)
    if not text or rel.is_absolute():
        raise ValueError(f"{name} {text!r}: give a path relative to the worker's --files folder")
    full = (root / rel).resolve()
    if full != root and root not in full.parents:
        raise ValueError(f"{name} {text!r}: outside the worker's --files folder")
    return str(full)


def make_prepare(files: Path) -> Prepare:
    root = files.resolve()

    async def prepare(
        job: jobs.CallJob, settings: WorkerSettings
    ) -> tuple[list[str], dict[str, str | None], Callable[[], Awaitable[None]] | None]:
        options = dict(job.options)
        refused = sorted(str(k) for k in options if k not in ALLOWED)
        if refused:
            raise ValueError(
                f"wav job option(s) not allowed: {', '.join(refused)} "
                f"(allowed: {', '.join(sorted(ALLOWED))})"
            )
        for name in PATH_OPTIONS:
            if name not in options or options[name] is None:
                continue
            value = options[name]
            if isinstance(value, list):
                options[name] = [confine(root, name, v) for v in value]
            else:
                options[name] = confine(root, name, value)
        if "output" not in options:  # not botrun-output.wav in the worker's directory
            options["output"] = str(root / f"{job.session_id}.wav")
        argv = [job.transport, *jobs.option_argv(options)]
        if settings.config:
            argv += ["--config", settings.config]
        return argv, {}, None

    return prepare
