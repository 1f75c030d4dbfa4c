"""``GET /metrics`` of one-machine serve (Prometheus text, the official client): bots
running, the slot limit, and how bots ended. Token-protected like the rest of the API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .supervisor import BotSession, Supervisor


class ServeMetrics:
    def __init__(self, supervisor: Supervisor) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        active = Gauge("botrun_serve_bots_active", "Bot processes running.", registry=self.registry)
        active.set_function(lambda: len(supervisor.sessions()))
        limit = Gauge("botrun_serve_max_bots", "--max-bots.", registry=self.registry)
        limit.set(supervisor.max_bots)
        self.outcomes = Counter(
            "botrun_serve_bots",
            "Bots that ended, by outcome: stopped (asked to leave), ended (exit 0), failed.",
            ["outcome"],
            registry=self.registry,
        )

    def bot_exited(self, session: BotSession) -> None:
        if session.stopping:
            outcome = "stopped"
        elif session.exit_code == 0:
            outcome = "ended"
        else:
            outcome = "failed"
        self.outcomes.labels(outcome).inc()

    async def handle(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
