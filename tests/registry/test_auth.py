"""WWW-Authenticate parsing and the auth ladder against a real token server."""

from __future__ import annotations

import pytest
import requests

from rootless.errors import AuthenticationError
from rootless.registry.auth import RegistryAuth, parse_www_authenticate
from rootless.registry.credentials import Credentials
from tests.registry.conftest import USERS
from tests.registry.servers import Registry, TokenServer


def test_bearer_challenge_like_docker_hub() -> None:
    [challenge] = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"')
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.params["service"] == "registry.docker.io"
    assert challenge.scopes == ("repository:library/busybox:pull",)


def test_several_challenges_quoted_commas_and_escapes() -> None:
    challenges = parse_www_authenticate(
        'Basic realm="a, \\"quoted\\" realm", Bearer realm="https://x/token",'
        'scope="repository:a:pull repository:b:pull,push",error="insufficient_scope"')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == 'a, "quoted" realm'
    assert challenges[1].scopes == ("repository:a:pull", "repository:b:pull,push")
    assert challenges[1].params["error"] == "insufficient_scope"


def test_unquoted_params_and_empty_header() -> None:
    [challenge] = parse_www_authenticate("Basic realm=registry")
    assert challenge.params == {"realm": "registry"}
    assert parse_www_authenticate("") == []


def test_secrets_stay_out_of_repr() -> None:
    creds = Credentials("alice", "s3cret", identity_token="tok3n")
    auth = RegistryAuth("example.com", requests.Session(), creds)
    assert "s3cret" not in repr(creds) + repr(auth)
    assert "tok3n" not in repr(creds) + repr(auth)


@pytest.mark.integration
def test_token_is_fetched_once_per_scope_and_reused(token_registry: Registry,
                                                    token_server: TokenServer) -> None:
    session = requests.Session()
    auth = RegistryAuth(token_registry.host, session, Credentials("alice", USERS["alice"]))
    token_server.requests.clear()
    url = f"{token_registry.url}/v2/public/none/tags/list"
    first = session.get(url, auth=auth, timeout=10)
    assert first.status_code == 401
    assert auth.handle_challenge(first)
    for _ in range(2):
        again = session.get(url, auth=auth, timeout=10)
        assert again.status_code == 404  # authorised; the repository does not exist
    assert token_server.requests == [("alice", ["repository:public/none:pull"])]


@pytest.mark.integration
def test_wrong_password_is_an_authentication_error(token_registry: Registry) -> None:
    session = requests.Session()
    auth = RegistryAuth(token_registry.host, session, Credentials("alice", "wrong"))
    resp = session.get(f"{token_registry.url}/v2/public/x/tags/list", auth=auth, timeout=10)
    with pytest.raises(AuthenticationError, match="access denied for 'alice'"):
        auth.handle_challenge(resp)


@pytest.mark.integration
def test_basic_challenge_without_credentials_says_login(basic_registry: Registry) -> None:
    session = requests.Session()
    auth = RegistryAuth(basic_registry.host, session)
    resp = session.get(f"{basic_registry.url}/v2/", auth=auth, timeout=10)
    with pytest.raises(AuthenticationError) as info:
        auth.handle_challenge(resp)
    assert info.value.hint == f"rootless login {basic_registry.host}"
