"""The build context: the files COPY and ADD may read, and nothing else.

A context comes from a directory, a tarball or a tar on stdin (``-``). Files
matched by ``.dockerignore`` (or ``<Dockerfile>.dockerignore`` next to the
Dockerfile, which wins) are invisible. Every source path is resolved inside
the context root: ``..`` or a symlink that would leave it is refused with the
Dockerfile line that asked for it.

Content checksums (for cache keys) cover path, type, permission bits, symlink
targets and file contents, never mtimes or owners: as in BuildKit, touching a
file does not invalidate the cache, editing it does.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rootless.build.ignore import IgnoreMatcher, clean_path, parse_dockerignore
from rootless.errors import BuildStepError, Location, UsageError

_MAX_SYMLINKS = 40


@dataclass(frozen=True, slots=True)
class ContextEntry:
    """One path of the context: ``rel`` is slash-separated from the root ("" = root)."""

    rel: str
    path: Path


def has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


@dataclass
class BuildContext:
    """A directory tree plus the ignore rules that hide part of it."""

    root: Path
    ignore: IgnoreMatcher = field(default_factory=lambda: IgnoreMatcher([]))
    _digests: dict[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolution -------------------------------------------------------

    def resolve(self, rel: str, loc: Location | None, *, follow_last: bool = True) -> Path:
        """The real path of context path ``rel``, refusing anything outside the root."""
        rel = rel.replace("\\", "/") if os.sep == "\\" else rel
        if posixpath.isabs(rel):
            rel = rel.lstrip("/")  # Docker reads "/x" as the context's "x"
        cleaned = clean_path(rel)
        if cleaned == ".." or cleaned.startswith("../"):
            raise BuildStepError(
                f"source {rel!r} is outside the build context", loc,
                hint="COPY and ADD can only read files inside the build context directory")
        parts = [] if cleaned == "." else cleaned.split("/")
        current: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if not current:
                    raise self._escape(rel, loc)
                current.pop()
                continue
            candidate = self.root.joinpath(*current, name)
            if candidate.is_symlink() and (parts or follow_last):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise BuildStepError(f"too many levels of symbolic links in {rel!r}", loc)
                target = os.readlink(candidate)
                if posixpath.isabs(target):
                    raise self._escape(rel, loc, target)
                joined = clean_path("/".join([*current, target]))
                if joined == ".." or joined.startswith("../"):
                    raise self._escape(rel, loc, target)
                parts = ([] if joined == "." else joined.split("/")) + parts
                current = []
                continue
            current.append(name)
        return self.root.joinpath(*current)

    @staticmethod
    def _escape(rel: str, loc: Location | None, target: str | None = None) -> BuildStepError:
        via = f" (through a symlink to {target!r})" if target else ""
        return BuildStepError(
            f"source {rel!r} points outside the build context{via}", loc,
            hint="symlinks in the context may only point to files inside it")

    def rel_of(self, path: Path) -> str:
        rel = path.relative_to(self.root).as_posix()
        return "" if rel == "." else rel

    def visible(self, rel: str) -> bool:
        return rel == "" or not self.ignore.ignored(rel)

    def expand(self, source: str, loc: Location | None) -> list[Path]:
        """The context paths a COPY source names (wildcards expanded, sorted).

        A literal source that is missing or ignored is an error, like Docker's
        "failed to compute cache key: ... not found"; a wildcard matching
        nothing is an error too.
        """
        cleaned = clean_path(source.lstrip("/") or ".")
        if not has_glob(cleaned):
            path = self.resolve(cleaned, loc)
            if not (path.exists() or path.is_symlink()) or not self.visible(self.rel_of(path)):
                raise BuildStepError(f"{source!r} not found in the build context", loc,
                                     hint=self._ignored_hint(cleaned))
            return [path]
        matches = self._glob(cleaned, loc)
        if not matches:
            raise BuildStepError(f"no source files were specified: {source!r} matches nothing "
                                 "in the build context", loc)
        return matches

    def _ignored_hint(self, rel: str) -> str | None:
        if rel != "." and self.ignore.ignored(rel):
            return f"{rel!r} is excluded by .dockerignore"
        return None

    def _glob(self, pattern: str, loc: Location | None) -> list[Path]:
        # Match component by component, as Go's filepath.Glob does: "*" never crosses "/".
        found: list[str] = [""]
        for part in pattern.split("/"):
            nxt: list[str] = []
            for base in found:
                if not has_glob(part):
                    nxt.append(posixpath.join(base, part) if base else part)
                    continue
                directory = self.resolve(base or ".", loc)
                if not directory.is_dir():
                    continue
                for name in sorted(os.listdir(directory)):
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append(posixpath.join(base, name) if base else name)
            found = nxt
        out: list[Path] = []
        for rel in found:
            path = self.resolve(rel, loc)
            if (path.exists() or path.is_symlink()) and self.visible(self.rel_of(path)):
                out.append(path)
        return out

    # -- walking and checksums ---------------------------------------------

    def checksum(self, top: Path) -> str:
        """A digest of ``top`` and its visible contents, independent of mtimes and owners."""
        key = self.rel_of(top)
        cached = self._digests.get(key)
        if cached is not None:
            return cached
        h = hashlib.sha256()
        for path in self.walk_sorted(top):
            rel = posixpath.relpath(self.rel_of(path) or ".", key or ".")
            st = path.lstat()
            h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
            h.update(f"{stat.S_IFMT(st.st_mode):o} {stat.S_IMODE(st.st_mode):o}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode("utf-8", "surrogateescape") + b"\0")
            elif stat.S_ISREG(st.st_mode):
                h.update(_file_digest(path).encode() + b"\0")
        digest = "sha256:" + h.hexdigest()
        self._digests[key] = digest
        return digest

    def walk_sorted(self, top: Path) -> list[Path]:
        """Every visible path at or below ``top`` in depth-first, name-sorted order.

        A directory the ignore rules hide but an exception reaches into is
        listed too when it holds something visible (Docker sends it along).
        """
        out: list[Path] = []

        def visit(path: Path, rel: str, hidden: bool) -> bool:
            is_dir = path.is_dir() and not path.is_symlink()
            if not is_dir:
                if not hidden:
                    out.append(path)
                return not hidden
            index = len(out)
            out.append(path)
            any_visible = not hidden
            if not hidden or self.ignore.may_include_below(rel):
                try:
                    names = sorted(os.listdir(path))
                except PermissionError as exc:
                    raise UsageError(f"cannot read {path} in the build context: {exc}") from exc
                for name in names:
                    child_rel = posixpath.join(rel, name) if rel else name
                    child_hidden = bool(self.ignore) and self.ignore.ignored(child_rel)
                    any_visible |= visit(path / name, child_rel, child_hidden)
            if not any_visible:
                del out[index:]
            return any_visible

        rel = self.rel_of(top)
        visit(top, rel, rel != "" and bool(self.ignore) and self.ignore.ignored(rel))
        return out


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_ignore_file(root: Path, dockerfile: Path | None) -> IgnoreMatcher:
    """The ignore rules: ``<Dockerfile>.dockerignore`` beside the Dockerfile wins over
    the context's ``.dockerignore``."""
    candidates = []
    if dockerfile is not None:
        candidates.append(dockerfile.parent / (dockerfile.name + ".dockerignore"))
    candidates.append(root / ".dockerignore")
    for candidate in candidates:
        if candidate.is_file():
            return IgnoreMatcher(parse_dockerignore(candidate.read_text(errors="replace")))
    return IgnoreMatcher([])


def open_directory(root: Path, dockerfile: Path | None) -> BuildContext:
    if not root.is_dir():
        raise UsageError(f"build context {root} is not a directory")
    return BuildContext(root.resolve(), read_ignore_file(root, dockerfile))


def open_tar(stream: BinaryIO, dockerfile: str | None) -> BuildContext:
    """A context from a tar stream (plain or compressed), unpacked into a temp dir."""
    from rootless.oci.layer import extract

    tmp = tempfile.TemporaryDirectory(prefix="rootless-context-")
    root = Path(tmp.name) / "context"
    try:
        extract(stream, root, name="build context")
    except BaseException:
        tmp.cleanup()
        raise
    df = root / dockerfile if dockerfile else root / "Dockerfile"
    ctx = BuildContext(root, read_ignore_file(root, df))
    ctx._tmp = tmp
    return ctx


def looks_like_tar(data: bytes) -> bool:
    """Is ``data`` a (possibly compressed) tar archive rather than a Dockerfile?"""
    if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
        return True
    return len(data) >= 512 and data[257:262] == b"ustar"
