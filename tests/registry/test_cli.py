"""The registry verbs' command lines (no registry needed)."""

from __future__ import annotations

from tests.helpers import Rootless


def test_verbs_have_help(rootless: Rootless) -> None:
    for verb in (("pull",), ("push",), ("login",), ("logout",), ("image", "pull"),
                 ("image", "push")):
        result = rootless(*verb, "--help")
        assert "--tls-verify" in result.stdout or verb == ("logout",)


def test_bad_reference_is_a_one_line_error(rootless: Rootless) -> None:
    result = rootless("pull", "UPPER/case", check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("rootless: invalid reference format")
    assert "Traceback" not in result.stderr


def test_all_tags_with_a_tag_is_refused(rootless: Rootless) -> None:
    result = rootless("pull", "-a", "127.0.0.1:1/x:1", check=False)
    assert result.returncode == 2
    assert "--all-tags" in result.stderr


def test_password_stdin_needs_a_username(rootless: Rootless) -> None:
    result = rootless("login", "--password-stdin", "127.0.0.1:1", input="pw\n", check=False)
    assert result.returncode == 2
    assert "--username" in result.stderr


def test_push_of_an_unknown_image(rootless: Rootless) -> None:
    result = rootless("push", "127.0.0.1:1/nothing:1", check=False)
    assert result.returncode != 0
    assert "No such image" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_platform(rootless: Rootless) -> None:
    result = rootless("pull", "--platform", "linux//", "127.0.0.1:1/x:1", check=False)
    assert result.returncode == 2
    assert "invalid platform" in result.stderr
