"""Prometheus metrics of the front door and of a worker (the official ``prometheus-client``),
each in a registry of its own, answered on ``GET /metrics`` (token-protected)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Start-latency buckets, seconds: from a warm start on one machine to a slow cold start.
START_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0)


class FrontDoorMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry: CollectorRegistry = CollectorRegistry()
        self.requests: Counter = Counter(
            "botrun_frontdoor_calls",
            "Call requests by what the front door did: queued, duplicate, busy, "
            "queue_unavailable, refused.",
            ["result"],
            registry=self.registry,
        )
        self.queue_depth: Gauge = Gauge(
            "botrun_queue_depth",
            "Call jobs waiting for a worker (read from Redis at each scrape).",
            registry=self.registry,
        )
        self.calls_active: Gauge = Gauge(
            "botrun_fleet_calls_active",
            "Calls queued, starting or running fleet-wide (read from Redis at each scrape).",
            registry=self.registry,
        )
        self.workers: Gauge = Gauge(
            "botrun_fleet_workers",
            "Workers with a live heartbeat.",
            registry=self.registry,
        )
        self.redis_up: Gauge = Gauge(
            "botrun_redis_up",
            "1 when Redis answered the last request, else 0.",
            registry=self.registry,
        )


class WorkerMetrics:
    def __init__(self, capacity: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry: CollectorRegistry = CollectorRegistry()
        self.calls_active: Gauge = Gauge(
            "botrun_worker_calls_active", "Calls running on this worker.", registry=self.registry
        )
        self.capacity: Gauge = Gauge(
            "botrun_worker_capacity", "Most calls this worker runs at once.", registry=self.registry
        )
        self.capacity.set(capacity)
        self.warm_idle: Gauge = Gauge(
            "botrun_worker_warm_idle",
            "Idle bot processes with the heavy imports done.",
            registry=self.registry,
        )
        self.outcomes: Counter = Counter(
            "botrun_worker_calls",
            "Calls by outcome: ended, failed, stopped, refused, lost (reported for a dead worker).",
            ["outcome"],
            registry=self.registry,
        )
        self.start_latency: Histogram = Histogram(
            "botrun_call_start_seconds",
            "Request received by the front door -> agent session ready in the bot, by start "
            "kind (warm: an idle process took the call; cold: a new process).",
            ["start"],
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait: Histogram = Histogram(
            "botrun_call_queue_wait_seconds",
            "Request received by the front door -> job taken by this worker.",
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.draining: Gauge = Gauge(
            "botrun_worker_draining", "1 once SIGTERM was received.", registry=self.registry
        )


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST
