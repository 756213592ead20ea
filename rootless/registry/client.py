"""The distribution API (OCI distribution spec) for one registry, over requests.

Each method is one protocol operation on one repository: manifests (HEAD, GET,
PUT), blobs (HEAD, GET with Range resume, mount, monolithic or chunked upload)
and tag listing. Pull and push orchestration lives in ``pull.py``/``push.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol
from urllib.parse import urljoin

import requests
import urllib3

from rootless.errors import RegistryError, StoreError, UsageError
from rootless.oci.model import (
    DOCKER_LAYER_FOREIGN,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_LAYER_NONDIST_GZIP,
    OCI_MANIFEST,
)
from rootless.registry import credentials as creds_mod
from rootless.registry.auth import RegistryAuth, short_reason
from rootless.registry.transport import Transport, raise_for_status, tls_policy

ACCEPT_MANIFESTS = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
IMAGE_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST))
# Layers a registry may not redistribute; Docker fetches them from their urls.
FOREIGN_LAYER_TYPES = frozenset({
    DOCKER_LAYER_FOREIGN,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    OCI_LAYER_NONDIST_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})
MAX_MANIFEST_SIZE = 4 << 20
DOWNLOAD_CHUNK = 1 << 20
UPLOAD_CHUNK = 1 << 20
DEFAULT_RETRIES = 5

ProgressFn = Callable[[int], None]


class BlobSink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index as the registry sent it: the exact bytes keep its digest."""

    data: bytes
    media_type: str
    digest: str

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def json(self) -> dict[str, Any]:
        parsed = json.loads(self.data)
        if not isinstance(parsed, dict):
            raise ValueError("not a JSON object")
        return parsed


class RegistryClient:
    """Distribution API calls against one registry host (``docker.io`` allowed)."""

    def __init__(
        self,
        domain: str,
        session: requests.Session | None = None,
        *,
        tls_verify: bool | None = None,
        credentials: creds_mod.Credentials | bool | None = True,
        retries: int | None = None,
        backoff: float = 0.5,
    ) -> None:
        """``credentials=True`` looks them up in Docker's config.json; ``retries``
        defaults to ``$ROOTLESS_REGISTRY_RETRIES``, else 5."""
        if retries is None:
            retries = _retries_from_env()
        self.domain = domain
        self.session = session or new_session()
        policy = tls_policy(domain, tls_verify)
        found = creds_mod.get_credentials(domain) if credentials is True else credentials
        self.auth = RegistryAuth(domain, self.session, found or None, verify=policy.verify)
        self.transport = Transport(domain, self.session, self.auth, policy,
                                   retries=retries, backoff=backoff)

    def want(self, repository: str, actions: str = "pull") -> None:
        """Ask for this scope with every token (before the first request saves a round trip)."""
        self.auth.add_scopes([f"repository:{repository}:{actions}"])

    # -- manifests -------------------------------------------------------------------

    def head_manifest(self, repository: str, reference: str, subject: str) -> ManifestInfo | None:
        """The digest a tag points to, without a (rate-limited) GET; None if unknown."""
        resp = self.transport.request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                      headers={"Accept": ACCEPT_MANIFESTS}, what=subject)
        if resp.status_code == 404:
            return None
        raise_for_status(resp, subject, (200,))
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:
            return None  # some registries leave it out of HEAD: the caller GETs
        return ManifestInfo(digest, _media_type(resp), int(resp.headers.get("Content-Length", 0)))

    def get_manifest(self, repository: str, reference: str, subject: str,
                     accept: str = ACCEPT_MANIFESTS) -> Manifest:
        resp = self.transport.request("GET", f"/v2/{repository}/manifests/{reference}",
                                      headers={"Accept": accept}, stream=True,
                                      what=subject)
        raise_for_status(resp, subject, (200,))
        data = _read_limited(resp, MAX_MANIFEST_SIZE, subject)
        algorithm = reference.split(":", 1)[0] if ":" in reference else "sha256"
        if algorithm not in hashlib.algorithms_available:
            raise RegistryError(f"{subject}: unsupported digest algorithm {algorithm!r}")
        actual = digest_of(data, algorithm)
        claimed = reference if ":" in reference else resp.headers.get("Docker-Content-Digest")
        if claimed and claimed.startswith(algorithm + ":") and claimed != actual:
            raise RegistryError(f"{subject}: manifest digest mismatch: expected {claimed}, "
                                f"got {actual}", code="DIGEST_INVALID")
        media_type = _media_type(resp)
        try:
            parsed = json.loads(data)
            if not isinstance(parsed, dict):
                raise ValueError("not an object")
        except ValueError:
            raise RegistryError(f"{subject}: malformed manifest (not a JSON object)") from None
        media_type = parsed.get("mediaType") or media_type
        if media_type not in INDEX_TYPES | MANIFEST_TYPES:
            if "manifests" in parsed:
                media_type = OCI_INDEX
            elif "layers" in parsed and "config" in parsed:
                media_type = OCI_MANIFEST
            else:
                raise RegistryError(f"{subject}: unsupported manifest type {media_type!r}",
                                    hint="schema1 manifests are deprecated; re-push the image")
        return Manifest(data, media_type, actual)

    def put_manifest(self, repository: str, reference: str, manifest: Manifest,
                     subject: str) -> str:
        resp = self.transport.request(
            "PUT", f"/v2/{repository}/manifests/{reference}",
            headers={"Content-Type": manifest.media_type}, body=lambda: manifest.data,
            what=subject)
        raise_for_status(resp, subject, (200, 201, 202))
        digest = resp.headers.get("Docker-Content-Digest", manifest.digest)
        if digest != manifest.digest:
            raise RegistryError(f"{subject}: registry stored the manifest as {digest}, "
                                f"not {manifest.digest}")
        return digest

    def list_tags(self, repository: str, subject: str) -> list[str]:
        tags: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list"
        while path:
            resp = self.transport.request("GET", path, what=subject)
            raise_for_status(resp, subject, (200,))
            try:
                tags.extend(resp.json().get("tags") or [])
            except (ValueError, AttributeError):
                raise RegistryError(f"{subject}: malformed tag list") from None
            link = resp.links.get("next", {}).get("url")
            path = urljoin(self.transport.base_url, link) if link else None
        return tags

    # -- blobs -----------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str, subject: str) -> bool:
        resp = self.transport.request("HEAD", f"/v2/{repository}/blobs/{digest}", what=subject)
        resp.close()
        if resp.status_code == 404:
            return False
        raise_for_status(resp, subject, (200,))
        return True

    def fetch_blob(
        self,
        repository: str,
        descriptor: dict[str, Any],
        sink: BlobSink,
        subject: str,
        progress: ProgressFn | None = None,
    ) -> None:
        """Stream a blob into ``sink``; a dropped connection resumes with Range.

        The sink (a store blob writer) verifies the digest; here we make sure we
        hand it exactly ``size`` bytes, no more, resuming where we stopped.
        """
        digest = str(descriptor["digest"])
        size = int(descriptor.get("size", -1))
        urls = [str(u) for u in descriptor.get("urls") or [] if str(u).startswith("http")]
        written = 0
        drops = 0
        path = f"/v2/{repository}/blobs/{digest}"
        while True:
            # identity: Range offsets must count the blob's own bytes.
            headers = {"Accept-Encoding": "identity"}
            if written:
                headers["Range"] = f"bytes={written}-"
            resp = self.transport.request("GET", path, headers=headers, stream=True,
                                          what=f"{subject}: blob {digest}")
            if resp.status_code == 404 and urls and path.startswith("/v2/"):
                resp.close()
                path = urls[0]  # a foreign layer: fetch it where the manifest says
                continue
            raise_for_status(resp, f"{subject}: blob {digest}", (200, 206))
            skip = written if resp.status_code == 200 else 0
            if resp.status_code == 206 and not _range_starts_at(resp, written):
                resp.close()
                raise RegistryError(f"{subject}: blob {digest}: registry resumed at the wrong "
                                    "offset")
            chunks = _body_chunks(resp)
            dropped: BaseException | None = None
            while True:
                try:
                    chunk = next(chunks, b"")
                except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError,
                        requests.Timeout, urllib3.exceptions.HTTPError, OSError) as exc:
                    dropped = exc
                    break
                if not chunk:
                    break
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                    if not chunk:
                        continue
                if size >= 0 and written + len(chunk) > size:
                    resp.close()
                    raise RegistryError(
                        f"{subject}: blob {digest}: registry sent more than the "
                        f"{size} bytes the manifest declares", code="DIGEST_INVALID")
                try:
                    sink.write(chunk)
                except OSError as exc:  # disk full, quota: not the network's fault
                    resp.close()
                    raise StoreError(f"{subject}: writing blob {digest}: {exc.strerror}"
                                     ) from None
                written += len(chunk)
                if progress:
                    progress(written)
            if dropped is not None:
                resp.close()
                drops += 1
                if drops > self.transport.retries:
                    raise RegistryError(f"{subject}: blob {digest}: download failed after "
                                        f"{drops} dropped connections: "
                                        f"{short_reason(dropped)}") from None
                continue
            resp.close()
            if size < 0 or written >= size:
                return
            drops += 1  # closed cleanly but short: resume as after a drop
            if drops > self.transport.retries:
                raise RegistryError(f"{subject}: blob {digest}: truncated at {written} of "
                                    f"{size} bytes")

    def mount_blob(self, repository: str, digest: str, source: str, subject: str) -> bool:
        """Cross-repository mount; False when the registry wants an upload instead."""
        resp = self.transport.request(
            "POST", f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": source},
            body=lambda: b"", what=subject)
        resp.close()
        if resp.status_code == 201:
            return True
        if resp.status_code == 202:
            location = resp.headers.get("Location")
            if location:  # it opened an upload session instead: cancel it
                self.transport.request("DELETE", self._location(location), what=subject).close()
            return False
        raise_for_status(resp, subject, (201, 202))
        return False

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        open_blob: Callable[[], BinaryIO],
        subject: str,
        progress: ProgressFn | None = None,
        chunk_size: int | None = None,
    ) -> None:
        """Upload a blob: one PUT (monolithic) or PATCHes of ``chunk_size`` then a PUT.

        A failure in the middle may leave the upload session unusable, so the
        whole upload starts again once, in a new session.
        """
        try:
            self._upload_once(repository, digest, size, open_blob, subject, progress,
                              chunk_size)
        except RegistryError as exc:
            if exc.status in (401, 403):
                raise
            self._upload_once(repository, digest, size, open_blob, subject, progress,
                              chunk_size)

    def _upload_once(self, repository: str, digest: str, size: int,
                     open_blob: Callable[[], BinaryIO], subject: str,
                     progress: ProgressFn | None, chunk_size: int | None) -> None:
        resp = self.transport.request("POST", f"/v2/{repository}/blobs/uploads/",
                                      body=lambda: b"", what=subject)
        raise_for_status(resp, subject, (202,))
        location = self._location(resp.headers["Location"])
        if chunk_size:
            location = self._upload_chunks(location, size, open_blob, subject, progress,
                                           chunk_size)
            def body() -> bytes | _FileBody:
                return b""
        else:
            def body() -> bytes | _FileBody:
                return _FileBody(open_blob, 0, size, progress)
        resp = self.transport.request(
            "PUT", _with_query(location, "digest", digest),
            headers={"Content-Type": "application/octet-stream"}, body=body, what=subject)
        raise_for_status(resp, subject, (201, 204))

    def _upload_chunks(self, location: str, size: int, open_blob: Callable[[], BinaryIO],
                       subject: str, progress: ProgressFn | None, chunk_size: int) -> str:
        offset = 0
        while offset < size:
            length = min(chunk_size, size - offset)
            start = offset

            def body(start: int = start, length: int = length) -> _FileBody:
                return _FileBody(open_blob, start, length, progress)

            resp = self.transport.request(
                "PATCH", location, body=body, what=subject,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": f"{start}-{start + length - 1}"})
            raise_for_status(resp, subject, (202,))
            location = self._location(resp.headers.get("Location", location))
            offset += length
        return location

    def _location(self, location: str) -> str:
        return urljoin(self.transport.base_url + "/", location)


class _FileBody:
    """A streamed request body with a known length (so requests sends Content-Length)."""

    def __init__(self, open_blob: Callable[[], BinaryIO], start: int, length: int,
                 progress: ProgressFn | None) -> None:
        self._open = open_blob
        self._start = start
        self._length = length
        self._progress = progress

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        with self._open() as f:
            f.seek(self._start)
            left = self._length
            while left > 0:
                chunk = f.read(min(UPLOAD_CHUNK, left))
                if not chunk:
                    raise RegistryError("blob shrank while it was being uploaded")
                left -= len(chunk)
                if self._progress:
                    self._progress(self._start + self._length - left)
                yield chunk


def _retries_from_env() -> int:
    text = os.environ.get("ROOTLESS_REGISTRY_RETRIES", "")
    if not text:
        return DEFAULT_RETRIES
    if not text.isdigit():
        raise UsageError(f"ROOTLESS_REGISTRY_RETRIES={text!r}: expected a number")
    return int(text)


class _Adapter(requests.adapters.HTTPAdapter):
    """HTTPAdapter whose unverified HTTPS (insecure registries, the HTTPS probe of
    localhost) skips loading the system CA store it would not use anyway."""

    _unverified: ssl.SSLContext | None = None

    def build_connection_pool_key_attributes(
            self, request: requests.PreparedRequest, verify: bool | str,
            cert: str | tuple[str, str] | None = None,
    ) -> Any:  # (host params, pool kwargs): typed dicts private to the requests stubs
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        if verify is False and cert is None and host_params.get("scheme") == "https":
            if _Adapter._unverified is None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                _Adapter._unverified = context
            pool_kwargs["ssl_context"] = _Adapter._unverified
        return host_params, pool_kwargs


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "rootless"
    # Enough pooled connections for the parallel layer downloads.
    adapter = _Adapter(pool_connections=4, pool_maxsize=16)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _media_type(resp: requests.Response) -> str:
    return resp.headers.get("Content-Type", "").split(";", 1)[0].strip()


def _body_chunks(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: bytes received before a drop are kept, so a
    resume starts where the connection broke, not at the last full chunk."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:  # urllib3 < 2: smaller chunks lose less on a drop
        yield from resp.iter_content(64 << 10)
        return
    while True:
        chunk = read1(DOWNLOAD_CHUNK)
        if not chunk:
            return
        yield chunk


def _read_limited(resp: requests.Response, limit: int, subject: str) -> bytes:
    data = bytearray()
    try:
        for chunk in resp.iter_content(65536):
            data += chunk
            if len(data) > limit:
                raise RegistryError(f"{subject}: manifest larger than {limit} bytes")
    except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
        raise RegistryError(f"{subject}: manifest download failed: {short_reason(exc)}") \
            from None
    finally:
        resp.close()
    return bytes(data)


def _range_starts_at(resp: requests.Response, offset: int) -> bool:
    content_range = resp.headers.get("Content-Range", "")
    # "bytes 100-199/200"
    try:
        return int(content_range.split()[1].split("-")[0]) == offset
    except (IndexError, ValueError):
        return False


def _with_query(url: str, key: str, value: str) -> str:
    from urllib.parse import quote

    return f"{url}{'&' if '?' in url else '?'}{key}={quote(value, safe='')}"
