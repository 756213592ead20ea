from tests.helpers import Rootless


def test_help_lists_verbs(rootless: Rootless) -> None:
    out = rootless("--help").stdout
    assert "image" in out and "system" in out


def test_unknown_verb_is_one_line_error(rootless: Rootless) -> None:
    res = rootless("frobnicate", check=False)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "invalid choice" in res.stderr
