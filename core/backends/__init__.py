"""Voice-agent backends: the services the bridge can talk to, behind one seam.

The bridge talks to "an agent session" (:class:`~botrun.core.backends.base.AgentSession`):
audio in, audio out, speech started/stopped, user and agent transcripts, reply
started/done/interrupted, tool calls and results, errors, resume. Each service is a backend
behind it -- a sans-I/O protocol module that translates the service's messages to the
events of :mod:`botrun.core.protocol`, plus its client -- registered through the
``botrun_backends`` pluggy hook (:mod:`botrun.core.hookspecs`) like transports. Built in:
``assemblyai`` (core/client.py, core/protocol.py, core/session.py), ``openai`` and
``gemini`` (this package). See docs/backends.md.
"""

from __future__ import annotations

from .base import AgentSession, BackendContext, BackendSpec, Playback

__all__ = ["AgentSession", "BackendContext", "BackendSpec", "Playback"]
