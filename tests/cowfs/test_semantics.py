"""POSIX semantics through a real mount, for every driver this machine supports.

Each test runs its scenario as mapped root in a fresh user + mount namespace
(the situation of the sandbox), mounts the three test layers + an empty upper
and checks what a container would see, then what the upper holds.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mmap
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from rootless.cowfs import mount_rootfs
from rootless.oci.layer import diff
from tests.cowfs.conftest import EXPECTED, Stack, in_namespace

Scenario = Callable[[Path], object]


def _run(stack: Stack, driver: str, scenario: Scenario, mapping: str = "single") -> object:
    def inside() -> object:
        with mount_rootfs(stack.lowers, stack.upper, stack.work, stack.target, driver) as h:
            result = scenario(stack.target)
            os.sync()
        assert not os.listdir(stack.target) or driver != "vfs"
        return result, h.changes()
    return in_namespace(inside, mapping=mapping)


def _tree(root: Path) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel + "/"
        for d in dirs:
            found[prefix + d] = None
        for f in files:
            found[prefix + f] = Path(dirpath, f).read_bytes()
    return found


def _move(src: Path, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError as exc:  # kernel overlayfs: EXDEV for merged dirs, as `mv` handles
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(str(src), str(dst))


def test_union_view_applies_the_whiteout_matrix(stack: Stack, driver: str) -> None:
    tree, _ = _run(stack, driver, _tree)  # type: ignore[misc]
    assert tree == EXPECTED


def test_open_lower_readonly_then_write_through_another_fd(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> bytes:
        with open(root / "a", "rb") as reader:
            with open(root / "a", "r+b") as writer:
                writer.write(b"A2")
            return reader.read()
    got, _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert got == b"A2"
    assert (stack.upper / "a").read_bytes() == b"A2"


def test_rename_lower_directory_with_files(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> tuple[bool, dict[str, bytes | None]]:
        _move(root / "dir", root / "moved")
        return (root / "dir").exists(), _tree(root / "moved")
    (old_exists, moved), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert not old_exists
    assert moved == {"x": b"x", "sub": None}


def test_delete_and_recreate_directory(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> list[str]:
        shutil.rmtree(root / "dir")
        (root / "dir").mkdir()
        (root / "dir" / "fresh").write_text("f")
        return sorted(os.listdir(root / "dir"))
    listing, _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert listing == ["fresh"]


def test_whiteout_then_recreate_file(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> tuple[bool, bytes]:
        os.unlink(root / "a")
        gone = not (root / "a").exists()
        (root / "a").write_bytes(b"again")
        return gone, (root / "a").read_bytes()
    (gone, data), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert gone and data == b"again"


def test_chmod_of_lower_dir(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> tuple[int, list[str]]:
        os.chmod(root / "dir", 0o700)
        return stat.S_IMODE(os.stat(root / "dir").st_mode), sorted(os.listdir(root / "dir"))
    (mode, listing), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert mode == 0o700 and listing == ["sub", "x"]


def test_hard_link_to_lower_file_then_write_either_name(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> tuple[bytes, bytes, int, bool]:
        os.link(root / "keep", root / "keep2")
        with open(root / "keep2", "ab") as f:
            f.write(b"+2")
        with open(root / "keep", "ab") as f:
            f.write(b"+1")
        a, b = os.stat(root / "keep"), os.stat(root / "keep2")
        return ((root / "keep").read_bytes(), (root / "keep2").read_bytes(), a.st_nlink,
                a.st_ino == b.st_ino)
    (one, two, nlink, same), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert one == two == b"keep+2+1"
    assert nlink == 2
    assert same or driver == "overlay"  # overlayfs keeps the lower inode number on copy-up


@pytest.mark.parametrize("mapping", ["single", "full"])
def test_presented_owner_survives_copy_up(stack: Stack, driver: str, mapping: str) -> None:
    if mapping == "full":
        from rootless.sandbox.userns import IdMapping
        if not isinstance(IdMapping.full_or_reason(), IdMapping):
            pytest.skip("no subordinate IDs for the full mapping")
    def scenario(root: Path) -> tuple[int, int]:
        shown = os.stat(root / "owned")
        os.chmod(root / "owned", 0o600)  # copy-up must keep the recorded owner
        return shown.st_uid, stat.S_IMODE(shown.st_mode)
    (uid, mode), _ = _run(stack, driver, scenario, mapping)  # type: ignore[misc]
    if driver == "fuse":  # the kernel drivers show what the disk holds
        # `ls -l` shows the image's owner where the namespace maps it, root otherwise
        assert (uid, mode) == (1000 if mapping == "full" else 0, 0o640)
    out = io.BytesIO()
    diff(stack.upper, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        member = tar.getmember("owned")
    assert (member.uid, member.gid, member.mode) == (1000, 1000, 0o600)


def test_a_directory_listing_shows_recorded_owners(stack: Stack, driver: str) -> None:
    # A listing answers attributes for every entry at once (READDIRPLUS on fuse): files
    # in directories without records are presented from lstat alone, the others not.
    from rootless.sandbox.userns import IdMapping
    if not isinstance(IdMapping.full_or_reason(), IdMapping):
        pytest.skip("no subordinate IDs for the full mapping")

    def scenario(root: Path) -> dict[str, tuple[int, int]]:
        shown = {}
        for directory in (root, root / "dir"):
            with os.scandir(directory) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    shown[os.path.relpath(entry.path, root)] = (st.st_uid,
                                                                stat.S_IMODE(st.st_mode))
        return shown
    shown, _ = _run(stack, driver, scenario, "full")  # type: ignore[misc]
    assert shown["dir/x"] == (0, 0o644) and shown["keep"] == (0, 0o644)
    if driver == "fuse":  # the kernel drivers show what the disk holds
        assert shown["owned"] == (1000, 0o640)


def test_special_files_xattrs_and_statfs(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> dict[str, object]:
        os.symlink("a", root / "sym")
        os.mkfifo(root / "fifo")
        os.setxattr(root / "a", "user.note", b"text/plain")
        with open(root / "log", "ab") as f:
            f.write(b"1")
        with open(root / "log", "ab") as f:
            f.write(b"2")
            f.flush()
            os.fsync(f.fileno())
        return {"sym": os.readlink(root / "sym"),
                "fifo": stat.S_ISFIFO(os.lstat(root / "fifo").st_mode),
                "xattr": os.getxattr(root / "a", "user.note"),
                "log": (root / "log").read_bytes(),
                "statfs": os.statvfs(root).f_bsize > 0}
    got, _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert got == {"sym": "a", "fifo": True, "xattr": b"text/plain", "log": b"12",
                   "statfs": True}


def test_binary_xattr_values_and_holes_seen_through_the_mount(stack: Stack,
                                                             driver: str) -> None:
    value = bytes(range(256)) * 4  # not UTF-8, with NULs: xattrs are bytes (e.g. ACLs)

    def scenario(root: Path) -> tuple[bytes, bool, bool, int, int]:
        os.setxattr(root / "a", "user.blob", value)
        got = os.getxattr(root / "a", "user.blob")
        listed = "user.blob" in os.listxattr(root / "a")
        os.removexattr(root / "a", "user.blob")
        gone = "user.blob" not in os.listxattr(root / "a")
        with open(root / "holey", "wb") as f:
            f.seek(1 << 20)
            f.write(b"data")
        fd = os.open(root / "holey", os.O_RDONLY)
        try:
            return got, listed, gone, os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0,
                                                                               os.SEEK_HOLE)
        finally:
            os.close(fd)
    got, _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert got[:3] == (value, True, True)
    assert got[3] >= 4096 and got[4] == 0  # the data starts after the hole


def test_more_files_open_at_once_than_a_default_descriptor_limit(stack: Stack,
                                                                 driver: str) -> None:
    def scenario(root: Path) -> int:
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        for i in range(1100):  # more than the usual soft limit of 1024
            (root / f"f{i}").write_bytes(b"%d" % i)
        with contextlib.ExitStack() as held:
            files = [held.enter_context(open(root / f"f{i}", "rb")) for i in range(1100)]
            return sum(int(f.read()) for f in files)
    total, _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert total == sum(range(1100))


def test_mmap_sparse_and_large_files(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> tuple[bytes, int, bytes]:
        with open(root / "mapped", "w+b") as f:
            f.truncate(8192)
            with mmap.mmap(f.fileno(), 8192) as m:
                m[4096:4101] = b"hello"
                m.flush()
        mapped = (root / "mapped").read_bytes()[4096:4101]
        big = root / "big"
        with open(big, "wb") as f:
            f.truncate(5 << 30)          # > 4 GiB, sparse
            f.seek((9 << 29) + 3)
            f.write(b"tail")
        with open(big, "rb") as f:
            f.seek((9 << 29) + 3)
            tail = f.read(4)
        return mapped, os.stat(big).st_size, tail
    (mapped, size, tail), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert mapped == b"hello" and size == 5 << 30 and tail == b"tail"
    assert os.stat(stack.upper / "big").st_blocks * 512 < 1 << 20  # still sparse


@pytest.mark.parametrize("cpus", ["all", "one"])
def test_reads_of_a_lower_file_span_many_requests(tmp_path: Path, driver: str,
                                                  cpus: str) -> None:
    # Reads through the mount span several requests: a short last one, and a read
    # past the end. On one CPU the fuse server splices reads instead of copying them.
    lower = tmp_path / "lower"
    lower.mkdir()
    data = os.urandom((1 << 20) + 7)
    (lower / "blob").write_bytes(data)
    stack = Stack([lower], tmp_path / "upper", tmp_path / "work", tmp_path / "merged")

    def inside() -> tuple[bool, bytes, bytes]:
        if cpus == "one":  # before mounting: the server inherits it
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        with (mount_rootfs(stack.lowers, stack.upper, stack.work, stack.target, driver),
              open(stack.target / "blob", "rb") as f):
            whole = f.read() == data  # compared here: the result travels by pipe
            chunk = os.pread(f.fileno(), 100, 300_000)
            past = os.pread(f.fileno(), 5, len(data) + 10)
        return whole, chunk, past
    whole, chunk, past = in_namespace(inside)
    assert whole
    assert chunk == data[300_000:300_100]
    assert past == b""


def test_timestamps_utime_omit_and_after_2038(stack: Stack, driver: str) -> None:
    later = 2**31 + 12345  # after 2038
    def scenario(root: Path) -> tuple[int, int, int]:
        os.utime(root / "a", ns=(1_000_000_000, 2_000_000_000))
        before = os.stat(root / "a")
        # UTIME_OMIT for atime, as `touch -m` does
        os.system(f"touch -m -d @{later} {root / 'a'}")
        after = os.stat(root / "a")
        return before.st_atime_ns, after.st_atime_ns, after.st_mtime_ns
    (atime_before, atime_after, mtime), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert atime_after == atime_before == 1_000_000_000
    assert mtime == later * 1_000_000_000
    assert os.stat(stack.upper / "a").st_mtime_ns == later * 1_000_000_000


def test_nanosecond_timestamps(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> int:
        os.utime(root / "a", ns=(1_700_000_000_123_456_789,) * 2)
        return os.stat(root / "a").st_mtime_ns
    got, _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert got == 1_700_000_000_123_456_789


def test_large_directory_listing_is_complete(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> tuple[int, int]:
        (root / "many").mkdir()
        for i in range(3000):
            (root / "many" / f"f{i:05d}").write_bytes(b"")
        names = os.listdir(root / "many")
        return len(names), len(set(names))
    (count, unique), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert count == unique == 3000


def test_diff_of_upper_has_exactly_the_changes(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> None:
        with open(root / "dir" / "x", "ab") as f:
            f.write(b"!")
        os.unlink(root / "keep")
        (root / "n").mkdir()
        (root / "n" / "f").write_bytes(b"f")
    _, changes = _run(stack, driver, scenario)  # type: ignore[misc]
    out = io.BytesIO()
    diff(stack.upper, out, paths=changes.paths() if changes else None)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
        assert tar.extractfile("dir/x").read() == b"x!"  # type: ignore[union-attr]
    assert names == ["dir", "dir/x", ".wh.keep", "n", "n/f"]
    if changes is not None:
        for path in ("dir/x", "keep", "n/f"):  # itself, or a whole new directory above it
            assert any(path == c or path.startswith(c + "/") for c in changes.paths())


def test_copy_up_on_truncate_xattr_and_utimes_leaves_lowers_alone(
        stack: Stack, driver: str) -> None:
    before = {p: (p.read_bytes(), os.stat(p).st_mtime_ns)
              for p in (stack.lowers[0] / "a", stack.lowers[0] / "dir/x",
                        stack.lowers[0] / "keep")}
    def scenario(root: Path) -> tuple[int, bytes, int]:
        os.truncate(root / "a", 1)
        os.setxattr(root / "dir" / "x", "user.tag", b"v")
        os.utime(root / "keep", (5, 5))
        return (os.stat(root / "a").st_size, os.getxattr(root / "dir" / "x", "user.tag"),
                os.stat(root / "keep").st_mtime_ns)
    (size, tag, mtime), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert (size, tag, mtime) == (1, b"v", 5_000_000_000)
    after = {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in before}
    assert after == before
    assert {"a", "dir", "keep"} <= set(os.listdir(stack.upper))


def test_rename_file_over_lower_file_and_rmdir_rules(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> tuple[bytes, bool, int]:
        os.rename(root / "keep", root / "a")
        try:
            os.rmdir(root / "dir")
            code = 0
        except OSError as exc:
            code = exc.errno or 0
        return (root / "a").read_bytes(), (root / "keep").exists(), code
    (data, keep_exists, code), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert data == b"keep" and not keep_exists and code == errno.ENOTEMPTY


def test_an_open_file_outlives_its_name(stack: Stack, driver: str) -> None:
    # The temporary-file idiom, and a lower file read after `rm`: the data stays
    # reachable through the open descriptor, the name is free for a new file.
    def scenario(root: Path) -> tuple[bytes, int, bytes, bool, bytes]:
        with open(root / "scratch", "w+b") as f, open(root / "keep", "rb") as lower:
            os.unlink(root / "scratch")
            os.unlink(root / "keep")
            f.write(b"hello")
            f.flush()
            os.ftruncate(f.fileno(), 3)
            f.seek(0)
            data, size = f.read(), os.fstat(f.fileno()).st_size
            (root / "scratch").write_bytes(b"new")
            return (data, size, lower.read(), (root / "keep").exists(),
                    (root / "scratch").read_bytes())
    got, _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert got == (b"hel", 3, b"keep", False, b"new")


def test_whiteouts_never_show_through_the_mount(stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> list[str]:
        os.unlink(root / "a")
        shutil.rmtree(root / "dir")
        return sorted(name for _, dirs, files in os.walk(root) for name in dirs + files)
    names, _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert not any(n.startswith(".wh.") or n in ("a", "dir", "x", "sub") for n in names)


def test_readdir_offsets_are_stable_while_the_directory_changes(
        stack: Stack, driver: str) -> None:
    def scenario(root: Path) -> tuple[int, int, bool]:
        big = root / "big"
        big.mkdir()
        for i in range(3000):
            (big / f"f{i:05d}").write_bytes(b"")
        seen: list[str] = []
        removed: set[str] = set()
        with os.scandir(big) as entries:
            for n, entry in enumerate(entries):
                seen.append(entry.name)
                if n == 100:  # remove and add entries in the middle of the listing
                    for i in range(2000, 2500):
                        os.unlink(big / f"f{i:05d}")
                        removed.add(f"f{i:05d}")
                    for i in range(200):
                        (big / f"new{i}").write_bytes(b"")
        kept = {f"f{i:05d}" for i in range(3000)} - removed
        return len(seen), len(set(seen)), kept <= set(seen)
    (count, unique, complete), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert count == unique and complete


def test_device_nodes_from_layers(tmp_path: Path, driver: str) -> None:
    if driver != "fuse":
        pytest.skip("only the fuse driver presents device records")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind in (("dev", tarfile.DIRTYPE), ("dev/null", tarfile.CHRTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.devmajor, info.devminor = kind, 0o666, 1, 3
            tar.addfile(info)
    from rootless.oci.layer import extract
    extract(io.BytesIO(buf.getvalue()), tmp_path / "l", name="devices")
    stack = Stack([tmp_path / "l"], tmp_path / "u", tmp_path / "w", tmp_path / "m")
    def scenario(root: Path) -> tuple[bool, int, list[bool]]:
        # (mknod of a device is refused by the kernel in a user namespace, as for podman)
        os.chmod(root / "dev" / "null", 0o600)  # copy-up keeps the record
        st = os.stat(root / "dev" / "null")
        kinds = [e.is_file() for e in os.scandir(root / "dev")]  # d_type, no stat
        return stat.S_ISCHR(st.st_mode), st.st_rdev, kinds
    (is_chr, rdev, kinds), _ = _run(stack, driver, scenario)  # type: ignore[misc]
    assert is_chr and rdev == os.makedev(1, 3)
    assert kinds == [False]
    out = io.BytesIO()
    diff(stack.upper, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        null = tar.getmember("dev/null")
    assert null.ischr() and (null.devmajor, null.devminor, null.mode) == (1, 3, 0o600)


def _as_user(root: Path, action: Callable[[], bytes]) -> bytes:
    """ACTION's result, run in a forked process as uid/gid 1000 with its cwd in ROOT
    (the test's temporary directories above ROOT are closed to other users)."""
    read_r, read_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        result = b"error"
        try:
            os.chdir(root)
            os.setgroups([])
            os.setresgid(1000, 1000, 1000)
            os.setresuid(1000, 1000, 1000)
            result = action()
        except PermissionError:
            result = b"denied"
        finally:
            os.write(read_w, result)
            os._exit(0)
    os.close(read_w)
    os.waitpid(pid, 0)
    with os.fdopen(read_r, "rb") as f:
        return f.read()


def test_non_root_user_in_the_container(stack: Stack, driver: str) -> None:
    from rootless.sandbox.userns import IdMapping
    if not isinstance(IdMapping.full_or_reason(), IdMapping):
        pytest.skip("no subordinate IDs for the full mapping")

    def write_mine() -> bytes:
        Path("dir/mine").write_bytes(b"m")
        os.symlink("mine", "dir/link")
        return b"ok"

    def scenario(root: Path) -> tuple[bytes, bytes, bytes, int, int]:
        read = _as_user(root, lambda: Path("a").read_bytes())
        denied = _as_user(root, lambda: os.mkdir("tmp-user") or b"made")  # / is 0755 root's
        os.chmod(root / "dir", 0o777)
        wrote = _as_user(root, write_mine)
        st = os.stat(root / "dir" / "mine")
        return read, denied, wrote, st.st_uid, st.st_gid
    (read, denied, wrote, uid, gid), _ = _run(stack, driver, scenario, "full")  # type: ignore[misc]
    assert (read, denied, wrote) == (b"a1", b"denied", b"ok")
    assert (uid, gid) == (1000, 1000)
    if driver != "overlay":  # overlay's upper holds a sub-ID owned file: diff in the namespace
        out = io.BytesIO()
        diff(stack.upper, out)
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            mine, link = tar.getmember("dir/mine"), tar.getmember("dir/link")
        assert (mine.uid, mine.gid) == (1000, 1000)
        assert (link.uid, link.gid, link.linkname) == (1000, 1000, "mine")
