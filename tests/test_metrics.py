"""Processing-latency statistics (core/metrics.py)."""

from __future__ import annotations

from botrun.core.metrics import LatencyStats


def test_a_batch_of_frames_adds_one_sample_per_frame() -> None:
    # The inbound batch times its frames together and adds them with one call.
    stats = LatencyStats(capacity=10)
    stats.add(0.001)
    stats.add(0.003, 4)
    stats.add(0.009, 0)  # a delivery without frames adds nothing
    assert stats.count == 5
    assert stats.percentile(0) == 0.001 and stats.percentile(100) == 0.003
    assert stats.percentile(50) == 0.003


def test_the_window_keeps_the_most_recent_samples() -> None:
    stats = LatencyStats(capacity=3)
    stats.add(0.001, 2)
    stats.add(0.002, 2)
    assert stats.count == 4
    assert stats.percentile(0) == 0.001 and stats.percentile(50) == 0.002
    stats.add(0.005, 3)
    assert stats.percentile(0) == 0.005
