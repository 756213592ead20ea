"""The suite proves things only as an ordinary user: nothing may pass because it ran as
root. `scripts/test`, started as root (as CI is), re-runs itself as such a user."""

from __future__ import annotations

import os


def test_the_suite_runs_as_an_ordinary_user() -> None:
    assert os.geteuid() != 0 and os.getuid() != 0, "run the tests with scripts/test"
