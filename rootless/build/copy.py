"""COPY and ADD into a root filesystem, with Docker's (BuildKit's) rules.

Everything here works on an already-mounted root filesystem directory (the
step's copy-on-write view): paths inside it are resolved the way the container
will see them, so a symlink in the image that points to ``/etc`` or to
``../../..`` is followed *within* the rootfs (as BuildKit's scoped resolution
does) and nothing is ever written outside it.

The rules, as ``docker build`` applies them:

* a directory source copies its *contents*, not the directory itself;
* a file source lands at DEST when DEST names no existing directory and does
  not end with ``/``; otherwise at ``DEST/<basename>``;
* several sources (or a wildcard) need a DEST ending with ``/`` (or an
  existing directory);
* missing parent directories of DEST are created (owned like the copied files);
* copied files belong to 0:0 unless ``--chown``; ``--chown=user`` alone uses
  the user's UID as GID too; names are looked up in the image's /etc/passwd
  and /etc/group;
* ``--chmod`` sets the mode of every copied file and directory;
* ADD extracts local tar archives (plain, gzip, bzip2, xz), detected by
  content, into DEST; an archive's owners are kept unless ``--chown``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from rootless.build.ignore import IgnoreMatcher, clean_path
from rootless.errors import BuildStepError, Location

# Sets owners; the executor runs us inside the build's user namespace, where
# os.lchown reaches every mapped ID. Tests outside a namespace pass their own.
Chown = Callable[[Path, int, int], None]


@dataclass(frozen=True, slots=True)
class CopySource:
    """A resolved source: its real path, and its path relative to where it came from
    (the context or a stage's root), which ``--parents`` and ``--exclude`` read."""

    path: Path
    rel: str
    # When set, only these host paths below ``path`` are copied (the build
    # context's .dockerignore has already decided; see BuildContext.walk_sorted).
    only: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class CopyOptions:
    chown: str | None = None
    chmod: str | None = None
    excludes: tuple[str, ...] = ()
    parents: bool = False
    is_add: bool = False


@dataclass(frozen=True, slots=True)
class Owner:
    uid: int
    gid: int


# -- paths inside the rootfs -------------------------------------------------


def resolve_in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """The host path for ``path`` as seen from inside ``root``: symlinks followed with
    ``root`` as ``/``, ``..`` stopping at ``root`` (the sandbox's resolution). Without
    ``follow_last`` a final symlink is the result itself (it is to be replaced)."""
    from rootless.sandbox.mounts import resolve_in_root as resolve

    if follow_last:
        return Path(resolve(str(root), path))
    parent, name = posixpath.split(clean_path("/" + path))
    if name in ("", ".", ".."):
        return Path(resolve(str(root), path))
    return Path(resolve(str(root), parent)) / name


def _mkdirs(root: Path, inner: str, owner: Owner | None, lchown: Chown = os.lchown,
            created_mode: int = 0o755) -> Path:
    """``mkdir -p`` inside ``root``; new directories get ``owner``. A dangling
    symlink on the way is followed (inside ``root``) and its target created."""
    current = ""
    for part in [p for p in inner.split("/") if p]:
        current = current + "/" + part
        host = resolve_in_root(root, current)
        if host.is_dir():
            continue
        if host.exists() or host.is_symlink():
            raise NotADirectoryError(f"{current} exists and is not a directory")
        if host.parent != root and not host.parent.is_dir():
            _mkdirs(root, "/" + host.parent.relative_to(root).as_posix(), owner, lchown,
                    created_mode)
        host.mkdir(mode=created_mode)
        os.chmod(host, created_mode)
        if owner is not None:
            lchown(host, owner.uid, owner.gid)
    return resolve_in_root(root, inner)


# -- owners ------------------------------------------------------------------


def _lookup(table: Path, name: str) -> tuple[int, int] | None:
    """(id, primary gid or -1) for ``name`` in a passwd or group file."""
    try:
        lines = table.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            try:
                gid = int(fields[3]) if len(fields) >= 4 and fields[3].isdigit() else -1
                return int(fields[2]), gid
            except ValueError:
                return None
    return None


def resolve_owner(root: Path, spec: str, loc: Location | None) -> Owner:
    """``--chown=USER[:GROUP]`` to numeric IDs, names looked up in the image."""
    user, _, group = spec.partition(":")
    if not user:
        raise BuildStepError(f"invalid --chown value {spec!r}", loc)
    if user.isdigit():
        uid = int(user)
    else:
        found = _lookup(resolve_in_root(root, "/etc/passwd"), user)
        if found is None:
            raise BuildStepError(f"unable to find user {user}: no matching entries in passwd "
                                 "file", loc)
        uid = found[0]
    if not group:
        return Owner(uid, uid)  # Docker: a user alone means the same numeric GID
    if group.isdigit():
        return Owner(uid, int(group))
    found = _lookup(resolve_in_root(root, "/etc/group"), group)
    if found is None:
        raise BuildStepError(f"unable to find group {group}: no matching entries in group "
                             "file", loc)
    return Owner(uid, found[0])


def parse_chmod(spec: str, loc: Location | None) -> int:
    try:
        mode = int(spec, 8)
    except ValueError:
        raise BuildStepError(f"invalid --chmod value {spec!r}: only octal modes are "
                             "supported", loc) from None
    if not 0 <= mode <= 0o7777:
        raise BuildStepError(f"invalid --chmod value {spec!r}", loc)
    return mode


# -- copying -----------------------------------------------------------------


class _Copier:
    def __init__(self, root: Path, owner: Owner, mode: int | None,
                 exclude: IgnoreMatcher, lchown: Chown) -> None:
        self.lchown = lchown
        self.root = root
        # Files we create are ours already: skip chown when that is the wanted owner.
        creator = (os.geteuid(), os.getegid()) if lchown is os.lchown \
            else getattr(lchown, "creator_ids", None)
        self.owned_by_us = creator == (owner.uid, owner.gid)
        self.owner = owner
        self.mode = mode
        self.exclude = exclude

    def set_meta(self, target: Path, st: os.stat_result, is_link: bool) -> None:
        self.lchown(target, self.owner.uid, self.owner.gid)
        if not is_link:
            os.chmod(target, self.mode if self.mode is not None else stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=not is_link)

    def _replace(self, target: Path, want_dir: bool) -> None:
        """Make room at ``target``: Docker overwrites files and links, merges dirs."""
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()
        elif target.is_dir() and not want_dir:
            shutil.rmtree(target)

    def copy_file(self, src: Path, target: Path, st: os.stat_result | None = None) -> None:
        st = st or src.lstat()
        if stat.S_ISLNK(st.st_mode):
            self._replace(target, False)
            os.symlink(os.readlink(src), target)
            self.set_meta(target, st, True)
            return
        if stat.S_ISDIR(st.st_mode):
            self._replace(target, True)
            if not target.exists():
                target.mkdir()
            return
        self._replace(target, False)
        if stat.S_ISREG(st.st_mode):
            self._copy_regular(src, target, st)
            return
        if stat.S_ISFIFO(st.st_mode):
            os.mkfifo(target)
        else:
            return  # sockets and devices are not copied (BuildKit skips them too)
        self.set_meta(target, st, False)

    def _copy_regular(self, src: Path, target: Path, st: os.stat_result) -> None:
        """One file, by descriptor: a context COPY writes thousands of them, so every
        system call saved counts (no chown when root already owns it, no chmod when
        the create mode is already right)."""
        mode = self.mode if self.mode is not None else stat.S_IMODE(st.st_mode)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if st.st_size:
                with open(src, "rb") as fin:
                    _copy_data(fin.fileno(), out, st.st_size)
            if not self.owned_by_us:
                self.lchown(target, self.owner.uid, self.owner.gid)
            if mode != 0o600 or not self.owned_by_us:
                os.fchmod(out, mode)  # after chown, which clears set-id bits
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(out)

    def copy_tree(self, src: Path, target: Path, rel: str,
                  only: frozenset[str] | None = None) -> None:
        """Copy the contents of directory ``src`` into directory ``target``."""
        dirs: list[tuple[Path, os.stat_result]] = []
        for dirpath, dirnames, filenames in os.walk(src):
            here = Path(dirpath)
            sub = here.relative_to(src)
            out_dir = target / sub
            keep_dirs = []
            for name in sorted(dirnames):
                child = here / name
                child_rel = posixpath.join(rel, sub.as_posix(), name)
                if self.exclude and self.exclude.ignored(clean_path(child_rel)):
                    continue
                if only is not None and str(child) not in only:
                    continue
                st = child.lstat()
                if stat.S_ISLNK(st.st_mode):
                    self.copy_file(child, out_dir / name, st)
                    continue
                self.copy_file(child, out_dir / name, st)
                dirs.append((out_dir / name, st))
                keep_dirs.append(name)
            dirnames[:] = keep_dirs
            for name in sorted(filenames):
                child_rel = posixpath.join(rel, sub.as_posix(), name)
                if self.exclude and self.exclude.ignored(clean_path(child_rel)):
                    continue
                if only is not None and str(here / name) not in only:
                    continue
                self.copy_file(here / name, out_dir / name)
        # Directory metadata last: writing into a directory changes its mtime.
        for out, st in reversed(dirs):
            self.set_meta(out, st, False)


def copy_sources(
    root: Path,
    sources: list[CopySource],
    dest: str,
    workdir: str,
    options: CopyOptions,
    loc: Location | None,
    *,
    multiple: bool = False,
    lchown: Chown = os.lchown,
) -> None:
    """Copy ``sources`` to ``dest`` inside ``root`` by Docker's rules.

    ``multiple`` says the instruction named several sources or a wildcard, which
    makes ``dest`` a directory even without a trailing slash.
    """
    owner = resolve_owner(root, options.chown, loc) if options.chown else Owner(0, 0)
    mode = parse_chmod(options.chmod, loc) if options.chmod else None
    exclude = IgnoreMatcher(options.excludes)
    dest_inner = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    dest_is_dir = dest.endswith(("/", "/.")) or dest == "."
    multiple = multiple or len(sources) > 1
    dest_host = resolve_in_root(root, dest_inner)
    if multiple and not (dest_is_dir or dest_host.is_dir()):
        raise BuildStepError(
            f"when using COPY with more than one source file, the destination must be a "
            f"directory and end with a /: {dest!r}", loc)
    copier = _Copier(root, owner, mode, exclude, lchown)
    try:
        for source in sources:
            if exclude and source.rel and exclude.ignored(clean_path(source.rel)):
                continue
            _copy_one(copier, root, source, dest_inner, dest_is_dir or multiple, options,
                      owner if options.chown else None, loc)
    except (OSError, tarfile.TarError) as exc:
        raise BuildStepError(f"copying to {dest}: {exc}", loc) from exc


def _copy_one(copier: _Copier, root: Path, source: CopySource, dest_inner: str,
              dest_is_dir: bool, options: CopyOptions, created_owner: Owner | None,
              loc: Location | None) -> None:
    st = os.stat(source.path)  # the top-level source is followed, as Docker does
    if options.parents:
        parent = posixpath.dirname(clean_path(source.rel))
        dest_inner = posixpath.join(dest_inner, parent) if parent not in ("", ".") else dest_inner
        dest_is_dir = True
    if stat.S_ISDIR(st.st_mode):
        if options.parents:
            dest_inner = posixpath.join(dest_inner, posixpath.basename(clean_path(source.rel)))
        target = _mkdirs(root, dest_inner, created_owner, copier.lchown)
        # --exclude patterns inside a directory source are relative to it, as in BuildKit.
        copier.copy_tree(source.path, target, "", source.only)
        if options.parents:
            copier.set_meta(target, st, False)
        return
    if options.is_add and _archive_opener(source.path) is not None:
        target = _mkdirs(root, dest_inner, created_owner, copier.lchown)
        extract_archive(source.path, target, root, created_owner, loc, copier.lchown)
        return
    host = resolve_in_root(root, dest_inner)
    if dest_is_dir or host.is_dir():
        target_dir = _mkdirs(root, dest_inner, created_owner, copier.lchown)
        target = target_dir / source.path.name
    else:
        _mkdirs(root, posixpath.dirname(dest_inner), created_owner, copier.lchown)
        target = resolve_in_root(root, dest_inner, follow_last=False)
    copier.copy_file(source.path, target, st)


def _copy_data(fd_in: int, fd_out: int, size: int) -> None:
    """Copy ``size`` bytes in the kernel where it can (copy_file_range, sendfile)."""
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(fd_in, fd_out, size - copied)
            if n == 0:
                break
            copied += n
    except OSError:
        pass
    while copied < size:
        n = os.sendfile(fd_out, fd_in, copied, size - copied)
        if n == 0:
            break
        copied += n


# -- ADD archives --------------------------------------------------------------


def _archive_opener(path: Path) -> Callable[[Path], IO[bytes]] | None:
    """How to open ``path`` as a tar stream, if it is an archive ADD extracts."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:2] == b"\x1f\x8b":
        return lambda p: cast(IO[bytes], gzip.open(p, "rb"))
    if head[:3] == b"BZh":
        return lambda p: cast(IO[bytes], bz2.open(p, "rb"))
    if head[:6] == b"\xfd7zXZ\x00":
        return lambda p: cast(IO[bytes], lzma.open(p, "rb"))
    if len(head) >= 262 and head[257:262] == b"ustar":
        return lambda p: open(p, "rb")
    return None


def extract_archive(archive: Path, target: Path, root: Path, owner: Owner | None,
                    loc: Location | None, lchown: Chown = os.lchown) -> None:
    """Unpack a local tar archive into ``target`` (inside ``root``), keeping every
    entry inside ``root``."""
    opener = _archive_opener(archive)
    assert opener is not None
    target_inner = "/" + target.relative_to(root).as_posix()
    with opener(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        deferred_dirs: list[tuple[Path, tarfile.TarInfo]] = []
        for member in tar:
            name = clean_path(member.name.lstrip("/"))
            if name in (".", ""):
                continue
            inner = posixpath.join(target_inner, name)
            parent = _mkdirs(root, posixpath.dirname(inner), owner, lchown)
            out = parent / posixpath.basename(inner)
            uid, gid = (owner.uid, owner.gid) if owner else (member.uid, member.gid)
            if out.is_symlink() or (out.exists() and not (member.isdir() and out.is_dir())):
                if out.is_dir() and not out.is_symlink():
                    shutil.rmtree(out)
                else:
                    out.unlink()
            if member.isdir():
                if not out.exists():
                    out.mkdir()
                deferred_dirs.append((out, member))
                lchown(out, uid, gid)
                continue
            if member.issym():
                os.symlink(member.linkname, out)
            elif member.islnk():
                link_src = resolve_in_root(root, posixpath.join(target_inner,
                                                                member.linkname.lstrip("/")))
                os.link(link_src, out)
                continue
            elif member.isreg():
                fileobj = tar.extractfile(member)
                assert fileobj is not None
                with open(out, "xb") as fout:
                    shutil.copyfileobj(fileobj, fout, 1 << 20)
                os.chmod(out, member.mode & 0o7777)
            elif member.isfifo():
                os.mkfifo(out)
            else:
                continue  # device nodes cannot be made without privilege
            lchown(out, uid, gid)
            os.utime(out, (member.mtime, member.mtime), follow_symlinks=not member.issym())
        for out, member in reversed(deferred_dirs):
            os.chmod(out, member.mode & 0o7777)
            os.utime(out, (member.mtime, member.mtime))


# -- ADD URL -------------------------------------------------------------------


def add_url(root: Path, url: str, dest: str, workdir: str, options: CopyOptions,
            checksum: str | None, loc: Location | None, lchown: Chown = os.lchown) -> None:
    """Download ``url`` to ``dest`` (a file; ``dest/`` + the URL's last path part)."""
    import email.utils
    import hashlib
    import tempfile
    from urllib.parse import urlparse

    import requests

    owner = resolve_owner(root, options.chown, loc) if options.chown else Owner(0, 0)
    dest_inner = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    h = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=root, delete=False) as tmp:
        try:
            with requests.get(url, stream=True, timeout=60) as resp:
                if resp.status_code >= 400:
                    raise BuildStepError(f"ADD {url}: server answered {resp.status_code}", loc)
                for chunk in resp.iter_content(1 << 20):
                    h.update(chunk)
                    tmp.write(chunk)
                modified = resp.headers.get("Last-Modified")
        except requests.RequestException as exc:
            os.unlink(tmp.name)
            raise BuildStepError(f"ADD {url}: {exc}", loc) from exc
    if checksum is not None:
        algo, _, want = checksum.partition(":")
        if algo != "sha256" or not want:
            os.unlink(tmp.name)
            raise BuildStepError(f"unsupported --checksum {checksum!r} (use sha256:<hex>)", loc)
        if h.hexdigest() != want.lower():
            os.unlink(tmp.name)
            raise BuildStepError(f"ADD {url}: checksum mismatch: expected {checksum}, got "
                                 f"sha256:{h.hexdigest()}", loc)
    name = posixpath.basename(urlparse(url).path) or "index.html"
    host_dest = resolve_in_root(root, dest_inner)
    if dest.endswith("/") or host_dest.is_dir():
        target = _mkdirs(root, dest_inner, owner if options.chown else None, lchown) / name
    else:
        _mkdirs(root, posixpath.dirname(dest_inner), owner if options.chown else None, lchown)
        target = resolve_in_root(root, dest_inner, follow_last=False)
    if target.is_symlink() or target.exists():
        target.unlink()
    os.replace(tmp.name, target)
    os.chmod(target, parse_chmod(options.chmod, loc) if options.chmod else 0o600)
    lchown(target, owner.uid, owner.gid)
    if modified:
        parsed = email.utils.parsedate_to_datetime(modified)
        os.utime(target, (parsed.timestamp(), parsed.timestamp()))
