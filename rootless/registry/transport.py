"""HTTP to one registry host: scheme and TLS choice, auth ladder, retries.

Insecure rules follow Docker: ``localhost``, ``127.0.0.0/8`` and ``::1`` are
insecure by default, as are hosts named in ``--tls-verify=false`` or the
``insecure-registries`` setting (``$XDG_CONFIG_HOME/rootless/registries.json``
or ``ROOTLESS_INSECURE_REGISTRIES``). For an insecure host HTTPS is tried first
without checking the certificate, then plain HTTP. A CA for one host lives in
``$XDG_CONFIG_HOME/rootless/certs.d/HOST[:PORT]/ca.crt`` (Docker's certs.d
layout; ``*.cert``/``*.key`` pairs there are client certificates); podman's and
Docker's certs.d directories are read when ours has nothing for the host.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from rootless.errors import AuthenticationError, RegistryError
from rootless.registry.auth import RegistryAuth, short_reason

log = logging.getLogger("rootless.registry")

DOCKER_HUB_API_HOST = "registry-1.docker.io"
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0

Body = bytes | Iterable[bytes] | None


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "rootless"


def configured_insecure_registries() -> set[str]:
    hosts = {h.strip() for h in os.environ.get("ROOTLESS_INSECURE_REGISTRIES", "").split(",")}
    path = config_home() / "registries.json"
    try:
        data = json.loads(path.read_text())
        hosts.update(str(h) for h in data.get("insecure-registries", []))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError) as exc:
        raise RegistryError(f"{path}: cannot read the insecure-registries setting ({exc})") \
            from None
    hosts.discard("")
    return hosts


def is_local_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1, with or without a port: insecure by default."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class TLSPolicy:
    verify: bool | str  # True, False, or a CA bundle path
    client_cert: tuple[str, str] | None = None
    allow_http: bool = False


def tls_policy(host: str, tls_verify: bool | None = None) -> TLSPolicy:
    """How to talk to ``host``; ``tls_verify`` is the user's --tls-verify, if given."""
    certs = certs_dir(host)
    ca = certs / "ca.crt"
    client_cert = None
    if certs.is_dir():
        for cert in sorted(certs.glob("*.cert")):
            key = cert.with_suffix(".key")
            if key.exists():
                client_cert = (str(cert), str(key))
                break
    if tls_verify is False:
        return TLSPolicy(False, client_cert, allow_http=True)
    if tls_verify is None and (is_local_host(host) or host in configured_insecure_registries()):
        return TLSPolicy(False, client_cert, allow_http=True)
    return TLSPolicy(str(ca) if ca.exists() else True, client_cert)


def certs_dir(host: str) -> Path:
    """The certs.d directory for ``host``: ours first, then those podman and Docker read."""
    ours = config_home() / "certs.d" / host
    for base in (ours.parent, Path.home() / ".config" / "containers" / "certs.d",
                 Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d")):
        if (base / host).is_dir():
            return base / host
    return ours


def api_host(host: str) -> str:
    return DOCKER_HUB_API_HOST if host in ("docker.io", "index.docker.io") else host


class Transport:
    """Requests to one registry, sharing a session, an auth state and a base URL."""

    def __init__(
        self,
        host: str,
        session: requests.Session,
        auth: RegistryAuth,
        policy: TLSPolicy,
        *,
        retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self.host = host
        self.session = session
        self.auth = auth
        self.policy = policy
        self.retries = retries
        self.backoff = backoff
        self._base: str | None = None
        if policy.verify is False:
            # The user chose not to verify this host; do not warn on every request.
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._ping_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        # Parallel layer threads may all arrive first: one of them pings.
        with self._ping_lock:
            if self._base is None:
                self.ping()
        assert self._base is not None
        return self._base

    def ping(self) -> None:
        """GET /v2/ to choose the scheme and learn the auth challenge."""
        schemes = ["https", "http"] if self.policy.allow_http else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            base = f"{scheme}://{api_host(self.host)}"
            try:
                resp = self.session.get(f"{base}/v2/", auth=self.auth, timeout=CONNECT_TIMEOUT,
                                        verify=self.policy.verify, cert=self.policy.client_cert)
            except requests.RequestException as exc:  # TLS refused, connection refused, ...
                last = exc
                continue
            if resp.status_code == 429:
                raise rate_limit_error(self.host, resp)
            if resp.status_code != 404:
                # Any other answer (even a 5xx) proves the scheme; requests retry later.
                self._base = base
                self._log_rate_limit(resp)
                if resp.status_code == 401:
                    # Basic-only registries want credentials from the first request on.
                    try:
                        self.auth.handle_challenge(resp)
                    except RegistryError:
                        pass
                return
            last = RegistryError(f"{self.host}: {base}/v2/ answered {resp.status_code}; "
                                 "is this a registry?", status=resp.status_code)
        if isinstance(last, requests.exceptions.SSLError):
            raise RegistryError(
                f"{self.host}: TLS failure: {short_reason(last)}",
                hint=f"add its CA to {config_home() / 'certs.d' / self.host / 'ca.crt'} "
                     "or use --tls-verify=false",
            )
        if isinstance(last, RegistryError):
            raise last
        raise RegistryError(f"{self.host}: registry unreachable: "
                            f"{short_reason(last) if last else 'no answer'}")

    def url(self, path: str) -> str:
        return path if "://" in path else self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        body: Callable[[], Body] | None = None,
        stream: bool = False,
        what: str = "",
    ) -> requests.Response:
        """Send with retries on connection failures and 5xx; 401s climb the auth ladder.

        ``body`` is a factory so that a retry sends the body again from its start.
        The caller checks the final status (see :func:`raise_for_status`).
        """
        auth_rounds = 0
        attempt = 0
        while True:
            try:
                resp = self.session.request(
                    method, self.url(path), headers=headers, params=params,
                    data=body() if body else None, auth=self.auth, stream=stream,
                    verify=self.policy.verify, cert=self.policy.client_cert,
                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"{self.host}: TLS failure: {short_reason(exc)}") from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if attempt >= self.retries:
                    raise RegistryError(
                        f"{self.host}: {what or method + ' ' + path}: connection failed "
                        f"after {attempt + 1} attempts: {short_reason(exc)}") from None
                self._wait(attempt, f"{short_reason(exc)}")
                attempt += 1
                continue
            except requests.RequestException as exc:  # bad redirects, invalid URLs
                raise RegistryError(f"{self.host}: {what or method + ' ' + path}: "
                                    f"{short_reason(exc)}") from None
            log.debug("%s %s -> %d", method, _without_query(resp.request.url or path),
                      resp.status_code)
            self._log_rate_limit(resp)
            if resp.status_code == 401 and auth_rounds < 3:
                auth_rounds += 1
                resp.close()
                if self.auth.handle_challenge(resp):
                    continue
            if resp.status_code == 429:
                limit = resp.headers.get("ratelimit-limit")
                if limit is not None or attempt >= self.retries:
                    raise rate_limit_error(self.host, resp)
                resp.close()
                self._wait(attempt, "429 Too Many Requests", resp.headers.get("Retry-After"))
                attempt += 1
                continue
            if resp.status_code in TRANSIENT_STATUS and attempt < self.retries:
                resp.close()
                self._wait(attempt, f"{resp.status_code} from {method} {path}")
                attempt += 1
                continue
            return resp

    def _wait(self, attempt: int, reason: str, retry_after: str | None = None) -> None:
        delay = self.backoff * (2 ** attempt) * (0.75 + random.random() / 2)
        if retry_after and retry_after.isdigit():
            delay = min(float(retry_after), 60.0)
        log.debug("%s: %s; retrying in %.1fs", self.host, reason, delay)
        time.sleep(delay)

    def _log_rate_limit(self, resp: requests.Response) -> None:
        remaining = resp.headers.get("ratelimit-remaining")
        if remaining is not None:
            log.debug("%s: ratelimit-remaining %s (limit %s)", self.host, remaining,
                      resp.headers.get("ratelimit-limit", "?"))


def about(exc: RegistryError, host: str, subject: str) -> RegistryError:
    """The same error, naming the reference instead of only the host."""
    message = exc.message
    if message.startswith(f"{host}: "):
        message = f"{subject}: {message[len(host) + 2:]}"
    elif not message.startswith(subject):
        message = f"{subject}: {message}"
    if message == exc.message:
        return exc
    return type(exc)(message, status=exc.status, code=exc.code, url=exc.url, hint=exc.hint)


def _without_query(url: str) -> str:
    # Upload URLs carry state tokens in the query: keep them out of logs.
    return url.split("?", 1)[0]


def _window(value: str | None) -> str:
    """``100;w=21600`` → ``100 per 6h``."""
    if not value:
        return "?"
    count, _, window = value.partition(";w=")
    if window.isdigit():
        seconds = int(window)
        span = f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"
        return f"{count} per {span}"
    return count


def rate_limit_error(host: str, resp: requests.Response) -> RegistryError:
    limit = resp.headers.get("ratelimit-limit")
    remaining = resp.headers.get("ratelimit-remaining")
    detail = f" (limit {_window(limit)}, remaining {_window(remaining)})" if limit else ""
    return RegistryError(
        f"{host}: too many requests: pull rate limit reached{detail}",
        status=429, code="TOOMANYREQUESTS", url=resp.url,
        hint=f"wait, or `rootless login {host}` for a higher limit",
    )


def error_detail(resp: requests.Response) -> tuple[str | None, str]:
    """The first ``errors[]`` entry of a distribution-spec error body: (code, message)."""
    try:
        body: Any = resp.json()
        first = body["errors"][0]
        return str(first.get("code") or "") or None, str(first.get("message") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, ""


def raise_for_status(resp: requests.Response, subject: str, expected: Iterable[int]) -> None:
    """Turn an unexpected answer into one line naming ``subject`` (a reference)."""
    if resp.status_code in set(expected):
        return
    code, message = error_detail(resp)
    status = resp.status_code
    resp.close()
    if status == 401:
        text = "unauthorized: authentication required"
        raise AuthenticationError(f"{subject}: {text}", status=status, code=code, url=resp.url)
    if status == 403:
        text = "denied: requested access to the resource is denied"
    elif status == 404:
        text = {"MANIFEST_UNKNOWN": "manifest unknown", "NAME_UNKNOWN": "repository not found",
                "BLOB_UNKNOWN": "blob unknown"}.get(code or "", "not found")
    else:
        text = f"registry answered {status}"
    if message and message.lower() not in text:
        text += f": {message}"
    raise RegistryError(f"{subject}: {text}", status=status, code=code, url=resp.url)
