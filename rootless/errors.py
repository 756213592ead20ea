"""Errors a user can meet, and where they point.

The CLI catches ``RootlessError`` alone and prints ``str(err)`` (plus ``err.hint``)
as one line on stderr; anything else escaping is a bug in rootless.

Our exception hierarchy::

    RootlessError                  (.hint: optional second line telling the fix)
      UsageError                   bad flags or arguments the parser could not catch
      ReferenceError_              an image reference that does not parse
      DockerfileError              (.loc) a Dockerfile problem at file:line:col
        DockerfileSyntaxError      text the grammar rejects
      PlanError                    (.loc) unknown stage, bad --target, ...
      BuildStepError               (.loc, .exit_status) a RUN/COPY/ADD that failed
      StoreError                   the on-disk store
        ImageNotFound              no image by that name or ID
        BlobNotFound
        DigestMismatch             content does not hash to the digest it claims
        StoreConflict              e.g. rmi of an image a container uses
      LayerError                   a layer tar we refuse (hostile paths, truncated, not a tar)
      RegistryError                (.status, .code, .url)
        AuthenticationError
      SandboxError                 no user namespaces, no /dev/fuse, exec failures
      CowfsError                   mounting or diffing the copy-on-write filesystem
      ContainerError               container records: unknown container, already running
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file; lines and columns count from 1."""

    file: str
    line: int
    column: int = 1
    end_line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class RootlessError(Exception):
    """Base of every error that is the user's to fix, or the environment's."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(RootlessError):
    exit_code = 2


class ReferenceError_(RootlessError):
    """An image reference that is not valid (named with a trailing underscore:
    Python's builtin ``ReferenceError`` is about weak references)."""


class DockerfileError(RootlessError):
    def __init__(
        self,
        message: str,
        loc: Location,
        *,
        source_line: str | None = None,
        hint: str | None = None,
    ) -> None:
        text = f"{loc}: {message}"
        if source_line is not None:
            caret = " " * (max(loc.column, 1) - 1) + "^"
            text = f"{text}\n    {source_line}\n    {caret}"
        super().__init__(text, hint=hint)
        self.loc = loc
        self.reason = message


class DockerfileSyntaxError(DockerfileError):
    pass


class PlanError(RootlessError):
    def __init__(self, message: str, loc: Location | None = None, *, hint: str | None = None):
        super().__init__(f"{loc}: {message}" if loc else message, hint=hint)
        self.loc = loc


class BuildStepError(RootlessError):
    def __init__(
        self, message: str, loc: Location | None, exit_status: int | None = None,
        *, hint: str | None = None,
    ) -> None:
        super().__init__(f"{loc}: {message}" if loc else message, hint=hint)
        self.loc = loc
        self.exit_status = exit_status


class StoreError(RootlessError):
    pass


class ImageNotFound(StoreError):
    pass


class BlobNotFound(StoreError):
    pass


class DigestMismatch(StoreError):
    pass


class StoreConflict(StoreError):
    pass


class LayerError(RootlessError):
    pass


class RegistryError(RootlessError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        url: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code
        self.url = url


class AuthenticationError(RegistryError):
    pass


class SandboxError(RootlessError):
    exit_code = 125


class CowfsError(RootlessError):
    pass


class ContainerError(RootlessError):
    pass
