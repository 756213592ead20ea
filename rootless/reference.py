"""Image references, normalised as Docker does. Pure: text in, value out.

``busybox`` means ``docker.io/library/busybox:latest``. The first path component
is a registry domain only if it contains ``.`` or ``:`` or is ``localhost``
(``registry.example:5000/app``); otherwise the reference lives on Docker Hub,
and single names get the ``library/`` namespace. A reference may carry a tag,
a digest (``name@sha256:...``) or both; with neither, the tag is ``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rootless.errors import ReferenceError_

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

# The grammar of github.com/distribution/reference, written out as regexes.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A normalised reference: ``domain/repository[:tag][@digest]``.

    ``repository`` is the path without the domain (``library/busybox``).
    ``tag`` is None only when the reference names a digest and no tag.
    """

    domain: str
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse and normalise ``text``; raise ReferenceError_ saying what is wrong."""
        if not text:
            raise ReferenceError_("invalid reference format: empty image name")
        if _IMAGE_ID.fullmatch(text):
            raise ReferenceError_(
                f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
        if text != text.strip():
            raise ReferenceError_(f"invalid reference format: {text!r} contains whitespace")
        rest, digest = _split_digest(text)
        name, tag = _split_tag(rest)
        domain, path = _split_domain(name)
        _check_path(path, text)
        if tag is not None and not _TAG.fullmatch(tag):
            raise ReferenceError_(f"invalid reference format: invalid tag {tag!r} in {text!r}")
        if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
            raise ReferenceError_(
                f"invalid reference format: repository name must not be more than "
                f"{MAX_NAME_LENGTH} characters")
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(domain, path, tag, digest)

    @property
    def name(self) -> str:
        """The full repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker prints it: ``busybox``, ``user/app``, ``reg:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            prefix = f"{OFFICIAL_NAMESPACE}/"
            if self.repository.startswith(prefix) and "/" not in self.repository[len(prefix):]:
                return self.repository[len(prefix):]
            return self.repository
        return self.name

    @property
    def familiar(self) -> str:
        """The short form Docker displays: ``busybox:latest``, ``reg:5000/app:1``."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> ImageReference:
        if not _TAG.fullmatch(tag):
            raise ReferenceError_(f"invalid reference format: invalid tag {tag!r}")
        return ImageReference(self.domain, self.repository, tag, None)

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.domain, self.repository, None, digest)

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag is not None else ""
        return out + (f"@{self.digest}" if self.digest is not None else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def _split_digest(text: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    rest, digest = text.split("@", 1)
    if not _DIGEST.fullmatch(digest):
        raise ReferenceError_(f"invalid reference format: invalid digest {digest!r} in {text!r}")
    algorithm, hexpart = digest.split(":", 1)
    if algorithm == "sha256" and len(hexpart) != 64:
        raise ReferenceError_(f"invalid reference format: invalid checksum digest length "
                              f"in {text!r}")
    return rest, digest


def _split_tag(text: str) -> tuple[str, str | None]:
    # A colon after the last slash starts the tag; one before it is a port.
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        return text[:colon], text[colon + 1:]
    return text, None


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            raise ReferenceError_(f"invalid reference format: invalid registry {first!r}")
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return domain, path


def _check_path(path: str, text: str) -> None:
    if path.lower() != path and all(
            _PATH_COMPONENT.fullmatch(c) for c in path.lower().split("/")):
        raise ReferenceError_(
            f"invalid reference format: repository name ({path}) must be lowercase")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise ReferenceError_(
                f"invalid reference format: {text!r} is not a valid image name",
                hint="names use lowercase letters, digits and separators . _ __ - "
                     "between path components, e.g. registry.example:5000/team/app:1.0")


def is_image_id_prefix(text: str) -> bool:
    """True for text that could name an image by ID: hex, optionally ``sha256:``-prefixed."""
    hexpart = text.removeprefix("sha256:")
    return 0 < len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart)
