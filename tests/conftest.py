"""Shared pytest fixtures (each block is self-contained; engineers append their own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio


# ---- voice-agent simulator (core/sim) ------------------------------------------------------
@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Any]:
    """A started local voice-agent simulator (echo scenario, 8x speed) on an ephemeral port."""
    from botrun.core.sim import Simulator

    async with Simulator(speed=8.0) as simulator:
        yield simulator
