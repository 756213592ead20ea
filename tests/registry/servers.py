"""Real servers for registry tests: Debian's docker-registry, a token server, a faulty proxy.

Nothing here is a mock of the registry: the proxy forwards to a real
docker-registry and only breaks the transport (drops, corrupts, 500s), the way
a flaky network or a broken registry would.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

STARTUP_DEADLINE = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], what: str, deadline: float = STARTUP_DEADLINE,
               proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``condition`` until true; fail naming ``what`` at the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        if condition():
            return
        # Yield the CPU briefly between polls (a poll loop, not a synchronising sleep).
        time.sleep(0.02)
    raise AssertionError(f"{what}: not ready after {deadline}s")


def _answers(url: str, **ssl: object) -> bool:
    import requests

    try:
        requests.get(url, timeout=1, **ssl)  # type: ignore[arg-type]
        return True
    except requests.RequestException:
        return False


@dataclass
class Registry:
    """A running ``docker-registry serve``; ``host`` is ``127.0.0.1:PORT``."""

    host: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_registry(workdir: Path, auth: str = "", tls: tuple[Path, Path] | None = None,
                   extra: str = "") -> Registry:
    """Start Debian's docker-registry on a free 127.0.0.1 port, storage in ``workdir``."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    tls_block = ""
    if tls is not None:
        tls_block = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: rootless-test-secret\n{tls_block}"
        + auth + extra
    )
    with open(workdir / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    registry = Registry(f"127.0.0.1:{port}", proc, workdir, "https" if tls else "http")
    verify: bool | str = str(tls[0]) if tls else True
    try:
        wait_until(lambda: _answers(f"{registry.url}/v2/", verify=verify),
                   f"docker-registry on port {port} (log: {workdir / 'registry.log'})",
                   proc=proc)
    except BaseException:
        registry.stop()  # never leave a registry behind a failed start
        raise
    return registry


def htpasswd_auth(workdir: Path, users: dict[str, str]) -> str:
    tool = shutil.which("htpasswd")
    if tool is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    path = workdir / "htpasswd"
    workdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for user, password in users.items():
        out = subprocess.run([tool, "-Bbn", user, password], capture_output=True, text=True,
                             check=True)
        lines.append(out.stdout.strip())
    path.write_text("\n".join(lines) + "\n")
    return f"auth:\n  htpasswd:\n    realm: rootless-test\n    path: {path}\n"


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """An HTTP server on a free 127.0.0.1 port, serving from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# -- TLS material made with the openssl CLI ------------------------------------------


def self_signed(workdir: Path, name: str, san: str | None = None) -> tuple[Path, Path]:
    """A self-signed RSA certificate (also usable as its own CA) and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
           "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)]
    if san:
        cmd += ["-addext", f"subjectAltName={san}"]
    subprocess.run(cmd, check=True, capture_output=True)
    return cert, key


# -- a Docker-Hub-like token server ---------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Issues RS256 JWTs like auth.docker.io: GET /token?service=&scope=, Basic auth optional.

    Anonymous users may pull repositories under ``public/``; a known user gets
    every action asked for. ``requests`` records (user, scopes) per token asked.
    """

    users: dict[str, str]
    workdir: Path
    service: str = "rootless-test-registry"
    issuer: str = "rootless-test-issuer"
    requests: list[tuple[str | None, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cert, self.key = self_signed(self.workdir, "token-signer")
        pem = self.cert.read_text()
        body = pem.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
        self.x5c = "".join(body.split())
        self.server = serve(self._handler())

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def registry_auth(self) -> str:
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {self.service}\n"
                f"    issuer: {self.issuer}\n    rootcertbundle: {self.cert}\n")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign(self, claims: dict[str, object]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}." \
                        f"{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), capture_output=True, check=True).stdout
        return f"{signing_input}.{_b64url(sig)}"

    def grant(self, user: str | None, scope: str) -> dict[str, object] | None:
        parts = scope.split(":")
        if len(parts) < 3 or parts[0] != "repository":
            return None
        name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
        if user is None:
            actions = [a for a in actions if a == "pull" and name.startswith("public/")]
        return {"type": "repository", "name": name, "actions": actions}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    raw = base64.b64decode(header[6:]).decode()
                    name, _, password = raw.partition(":")
                    if outer.users.get(name) != password:
                        self._send(401, {"details": "incorrect username or password"})
                        return
                    user = name
                scopes = [s for value in query.get("scope", []) for s in value.split(" ")]
                self._issue(user, scopes)

            def do_POST(self) -> None:
                # OAuth2 refresh-token grant: how identity tokens (docker login SSO) are used.
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                refresh = form.get("refresh_token", [""])[0]
                user = refresh.removeprefix("refresh-")
                if form.get("grant_type") != ["refresh_token"] or user not in outer.users:
                    self._send(401, {"details": "invalid refresh token"})
                    return
                scopes = [s for value in form.get("scope", []) for s in value.split(" ")]
                self._issue(user, scopes)

            def _issue(self, user: str | None, scopes: list[str]) -> None:
                outer.requests.append((user, scopes))
                now = int(time.time())
                access = [g for g in (outer.grant(user, s) for s in scopes) if g]
                token = outer.sign({
                    "iss": outer.issuer, "sub": user or "", "aud": outer.service,
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                    "access": access,
                })
                self._send(200, {"token": token, "access_token": token, "expires_in": 300,
                                 "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                            time.gmtime(now))})

            def _send(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


# -- a faulty proxy in front of a real registry ------------------------------------


@dataclass
class Faults:
    """What the proxy breaks. Counters go down as faults are injected."""

    drop_blob_after: int | None = None  # bytes of a blob body sent before hanging up
    drops: int = 0                      # how many blob GETs to cut
    corrupt_blobs: bool = False         # flip a byte in every blob body
    corrupt_manifests: bool = False     # add a byte to every manifest body
    hide_head_digest: bool = False      # HEAD answers without Docker-Content-Digest
    refuse_list_accept: bool = False    # 404 a manifest request that accepts lists
    slow_blobs: float = 0.0             # seconds between 64 KiB pieces of blob bodies
    errors_500: int = 0                 # answer this many requests with 500
    error_paths: str = "/blobs/"        # ... whose path contains this
    status_429: bool = False            # answer everything with Docker Hub's 429
    seen: list[str] = field(default_factory=list)


class FaultyProxy:
    """HTTP proxy to ``upstream`` (host:port) that injects ``faults``."""

    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream
        self.faults = faults
        self.lock = threading.Lock()
        self.server = serve(self._handler())

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take(self, name: str) -> bool:
        with self.lock:
            left = getattr(self.faults, name)
            if left > 0:
                setattr(self.faults, name, left - 1)
                return True
            return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                faults = proxy.faults
                ranged = self.headers.get("Range", "")
                faults.seen.append(f"{self.command} {self.path} {ranged}".strip())
                if faults.status_429:
                    self._reply(429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":'
                                     b'"You have reached your pull rate limit."}]}',
                                {"ratelimit-limit": "100;w=21600",
                                 "ratelimit-remaining": "0;w=21600"})
                    return
                if (faults.refuse_list_accept and "/manifests/" in self.path
                        and "list" in self.headers.get("Accept", "")):
                    self._reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN",'
                                     b'"message":"manifest unknown"}]}')
                    return
                if faults.error_paths in self.path and proxy._take("errors_500"):
                    self._reply(500, b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}')
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "transfer-encoding")}
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                is_blob = (self.command == "GET" and "/blobs/sha256:" in self.path
                           and resp.status in (200, 206))
                out_headers = {k: v for k, v in resp.getheaders()
                               if k.lower() not in ("connection", "transfer-encoding",
                                                    "content-length")}
                if faults.hide_head_digest and self.command == "HEAD":
                    out_headers.pop("Docker-Content-Digest", None)
                if (faults.corrupt_manifests and self.command == "GET"
                        and "/manifests/" in self.path and resp.status == 200):
                    data += b" "
                if is_blob and faults.corrupt_blobs and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                if (is_blob and faults.drop_blob_after is not None
                        and len(data) > faults.drop_blob_after and proxy._take("drops")):
                    self.send_response(resp.status)
                    for k, v in out_headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:faults.drop_blob_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if is_blob and faults.slow_blobs:
                    self._trickle(resp.status, data, out_headers, faults.slow_blobs)
                    return
                self._reply(resp.status, data, out_headers,
                            head=self.command == "HEAD",
                            length=resp.getheader("Content-Length"))

            def _trickle(self, status: int, data: bytes, headers: dict[str, str],
                         pause: float) -> None:
                # A slow network, not synchronisation: the client sees bytes arrive slowly.
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for start in range(0, len(data), 65536):
                        self.wfile.write(data[start:start + 65536])
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:
                    self.close_connection = True  # the client went away

            def _read_chunked(self) -> bytes:
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()

            def _reply(self, status: int, data: bytes, headers: dict[str, str] | None = None,
                       head: bool = False, length: str | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", length if head and length else str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        return Handler

