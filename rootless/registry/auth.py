"""Registry authentication: the anonymous → bearer → basic ladder.

A request goes out first with whatever this host has already earned (nothing,
a cached bearer token or basic credentials). When the registry answers 401, the
transport hands the response to :meth:`RegistryAuth.handle_challenge`, which
reads ``WWW-Authenticate`` and climbs one rung: fetch a bearer token from the
challenge's realm (anonymously, or with the user's credentials as Docker Hub
expects) or switch to basic. Tokens are cached per (realm, service, scopes)
until they expire. Secrets never appear in ``repr`` or log lines.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

from rootless.errors import AuthenticationError, RegistryError

if TYPE_CHECKING:
    from rootless.registry.credentials import Credentials

# A token without expires_in lives 60 s (distribution's token spec).
DEFAULT_TOKEN_LIFETIME = 60.0
# Refresh a little before the registry would refuse it.
EXPIRY_MARGIN = 5.0

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a WWW-Authenticate header, e.g. Bearer realm=...,service=..."""

    scheme: str  # lower-cased: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        # Several scopes come space-separated in one parameter.
        return tuple(self.params.get("scope", "").split())


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (RFC 7235) into challenges, quoted strings unescaped."""
    challenges: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        scheme_match = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)").match(text, pos)
        if not scheme_match:
            break
        scheme = scheme_match.group(1).lower()
        pos = scheme_match.end()
        params: dict[str, str] = {}
        while True:
            param = _PARAM.match(text, pos)
            if not param:
                break
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param.group(1).lower()] = value
            pos = param.end()
        challenges.append(Challenge(scheme, params))
    return challenges


@dataclass
class _Token:
    value: str
    expires: float


class RegistryAuth(AuthBase):
    """Authorization for one registry host, shared by every request to it.

    ``scopes`` are asked for with every token request on top of the challenge's
    own (e.g. ``repository:lib/app:pull,push`` while pushing, plus a pull scope
    on a mount source), so one token covers a whole pull or push.
    """

    def __init__(
        self,
        host: str,
        session: requests.Session,
        credentials: Credentials | None = None,
        *,
        verify: bool | str = True,
    ) -> None:
        self.host = host
        self.netlocs = {host, "registry-1.docker.io" if host == "docker.io" else host}
        self._session = session
        self._credentials = credentials
        self._verify = verify
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._scopes: set[str] = set()
        self._tokens: dict[tuple[str, str, frozenset[str]], _Token] = {}
        self._current: _Token | None = None
        self._basic = False

    def __repr__(self) -> str:
        user = self._credentials.username if self._credentials else None
        return f"RegistryAuth(host={self.host!r}, user={user!r})"

    def add_scopes(self, scopes: Iterable[str]) -> None:
        with self._lock:
            self._scopes.update(scopes)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        # Never hand our credentials to another host (foreign layer URLs, CDNs).
        if urlsplit(r.url or "").netloc not in self.netlocs:
            return r
        header = self.authorization()
        if header:
            r.headers["Authorization"] = header
        return r

    def authorization(self) -> str | None:
        with self._lock:
            token = self._current
            if token is not None and token.expires > time.monotonic():
                return f"Bearer {token.value}"
            if self._basic and self._credentials is not None:
                return _basic_header(self._credentials)
        return None

    def handle_challenge(self, response: requests.Response) -> bool:
        """Climb one rung after a 401; True when the request is worth sending again."""
        challenges = parse_www_authenticate(response.headers.get("WWW-Authenticate", ""))
        sent = response.request.headers.get("Authorization", "") if response.request else ""
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.realm:
                scopes = set(challenge.scopes)
                with self._lock:
                    scopes |= self._scopes
                    self._scopes |= set(challenge.scopes)
                token = self._token_for(challenge, frozenset(scopes))
                if sent == f"Bearer {token.value}":
                    raise self._refused(challenge, response)
                return True
            if challenge.scheme == "basic":
                if self._credentials is None or not self._credentials.username:
                    raise self._refused(challenge, response)
                if sent.startswith("Basic "):
                    raise self._refused(challenge, response)
                with self._lock:
                    self._basic = True
                return True
        raise self._refused(None, response)

    def _refused(self, challenge: Challenge | None, response: requests.Response) -> RegistryError:
        if self._credentials is None:
            return AuthenticationError(
                f"{self.host}: authentication required", status=401, url=response.url,
                hint=f"rootless login {self.host}",
            )
        return AuthenticationError(
            f"{self.host}: access denied for {self._credentials.username!r}"
            + (f" (scope {' '.join(challenge.scopes)})" if challenge and challenge.scopes else ""),
            status=401, url=response.url,
        )

    def _token_for(self, challenge: Challenge, scopes: frozenset[str]) -> _Token:
        key = (challenge.realm, challenge.params.get("service", ""), scopes)
        # One fetch at a time: parallel requests meeting the same 401 share a token.
        with self._fetch_lock:
            with self._lock:
                cached = self._tokens.get(key)
                if cached is not None and cached.expires > time.monotonic():
                    self._current = cached
                    return cached
            token = self._fetch_token(challenge, scopes)
            with self._lock:
                self._tokens[key] = token
                self._current = token
            return token

    def _fetch_token(self, challenge: Challenge, scopes: frozenset[str]) -> _Token:
        params: list[tuple[str, str]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", scope) for scope in sorted(scopes))
        creds = self._credentials
        try:
            if creds is not None and creds.identity_token:
                # An identity token is an OAuth2 refresh token (docker login with SSO).
                form = dict(params)
                form.update(grant_type="refresh_token", refresh_token=creds.identity_token,
                            client_id="rootless", scope=" ".join(sorted(scopes)))
                resp = self._session.post(challenge.realm, data=form, timeout=60,
                                          verify=self._verify)
            else:
                auth = (creds.username, creds.password) if creds and creds.username else None
                resp = self._session.get(challenge.realm, params=params, auth=auth, timeout=60,
                                         verify=self._verify)
        except requests.RequestException as exc:
            raise RegistryError(f"{self.host}: cannot reach the token server "
                                f"{challenge.realm}: {short_reason(exc)}") from None
        if resp.status_code in (401, 403):
            raise self._refused(challenge, resp)
        if resp.status_code != 200:
            raise RegistryError(f"{self.host}: token server {challenge.realm} answered "
                                f"{resp.status_code}", status=resp.status_code, url=resp.url)
        try:
            body = resp.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value = None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{self.host}: token server {challenge.realm} sent no token",
                                url=resp.url)
        return _Token(value, time.monotonic() + max(lifetime - EXPIRY_MARGIN, 1.0))


def _basic_header(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def short_reason(exc: BaseException) -> str:
    """The innermost reason of a requests error, without the URL noise around it."""
    text = str(exc)
    match = re.search(r"\(Caused by \w+\((.*)\)\)", text)
    reason = match.group(1) if match else text
    return reason.strip("'\"")[:200]
