"""``GET /metrics`` on one-machine serve (issue 20): Prometheus text, token-protected."""

from __future__ import annotations

from pathlib import Path

from serve_support import serve_harness, wait_for


async def test_metrics_count_running_bots_and_how_they_ended(tmp_path: Path) -> None:
    async with serve_harness(tmp_path) as h:
        refused = await h.client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        data = await (await h.dialin("call-m")).json()
        await wait_for(h.bot_records, "the bot to start")
        running = await (await h.client.get("/metrics")).text()
        await h.client.delete(f"/sessions/{data['session_id']}")
        await wait_for(lambda: h.supervisor.sessions() == [], "the bot to leave")
        await wait_for(lambda: h.api.deleted, "its room to be deleted (after the count)")
        after = await (await h.client.get("/metrics")).text()
    assert refused.status == 401
    assert "botrun_serve_bots_active 1.0" in running and "botrun_serve_max_bots 2.0" in running
    assert "botrun_serve_bots_active 0.0" in after
    assert 'botrun_serve_bots_total{outcome="stopped"} 1.0' in after
