"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import pytest

from rootless.sandbox.userns import IdMapping


@pytest.fixture(params=["full", "single"])
def mode(request: pytest.FixtureRequest) -> str:
    """Each ID-mapping mode in turn (full skipped where the host has no sub-IDs)."""
    if request.param == "full" and not isinstance(IdMapping.full_or_reason(), IdMapping):
        pytest.skip("full ID mapping unavailable here")
    return str(request.param)
