"""``rootless login``: check credentials against the registry, then save them."""

from __future__ import annotations

from pathlib import Path

from rootless.errors import AuthenticationError, RegistryError
from rootless.registry.client import RegistryClient
from rootless.registry.credentials import Credentials, store_credentials


def normalise_server(server: str) -> str:
    """``https://index.docker.io/v1/`` → ``docker.io``; ``http://host:5000/`` → ``host:5000``."""
    for prefix in ("https://", "http://"):
        if server.startswith(prefix):
            server = server[len(prefix):]
    host = server.split("/", 1)[0].lower()
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    if not host:
        raise RegistryError(f"invalid registry {server!r}")
    return host


def login(server: str, username: str, password: str, *,
          tls_verify: bool | None = None) -> Path | str:
    """Verify the credentials (GET /v2/ through the auth ladder) and save them."""
    creds = Credentials(username, password)
    client = RegistryClient(server, tls_verify=tls_verify, credentials=creds, retries=2)
    try:
        resp = client.transport.request("GET", "/v2/", what=f"login to {server}")
        resp.close()
        refused = resp.status_code == 401
    except AuthenticationError:
        refused = True
    if refused:
        raise AuthenticationError(f"login to {server} as {username!r} failed: unauthorized: "
                                  "incorrect username or password", status=401)
    if resp.status_code != 200:
        raise RegistryError(f"login to {server} failed: registry answered {resp.status_code}",
                            status=resp.status_code)
    return store_credentials(server, creds)
