"""Check that a byte stream is one complete tar archive, as it streams past.

Python's ``tarfile`` forgives a stream that stops between members, or in the
middle of a header, and reports a clean end; an image built from such a
stream silently loses files. ``TarChecker`` walks the headers itself and
insists on the end-of-archive marker, so a truncated download or a cut
``cat rootfs.tar`` is refused before anything is committed. It also refuses
member names (and hard-link targets) that climb out with ``..``, whichever
header spells them (ustar name and prefix, GNU long names, pax ``path``), so a
hostile tarball never enters the store as a layer.
"""

from __future__ import annotations

from rootless.errors import LayerError

BLOCK = 512
# Types that never carry data, whatever their size field says; every other
# type (files, pax and GNU long-name headers, unknown ones) is followed by
# its size in data blocks, as tarfile assumes too.
_NO_DATA_TYPES = frozenset(b"123456")


class TarChecker:
    """Feed chunks with ``feed``; ``finish`` raises LayerError unless the tar was whole."""

    def __init__(self, what: str = "tar archive") -> None:
        self.what = what
        self.members = 0
        self._buf = bytearray()
        self._skip = 0            # data bytes still to pass before the next header
        self._ended = False       # saw the zero block that ends the archive
        self._pax: dict[bytes, bytes] = {}  # pax records (size, path, ...) for the next member
        self._pax_pending = bytearray()
        self._pax_left = 0
        self._captured_kind = 0   # header type whose data is being captured (x, L, K)
        self._long_names: dict[int, bytes] = {}   # GNU 'L' / 'K' names for the next member
        self._sparse_ext = False  # GNU sparse extension headers follow
        self._offset = 0

    def feed(self, data: bytes) -> None:
        if self._ended:
            return  # padding after the end marker is allowed
        view = memoryview(data)
        while len(view) and not self._ended:
            if self._skip:
                take = min(self._skip, len(view))
                if self._pax_left:
                    grab = min(self._pax_left, take)
                    self._pax_pending += view[:grab]
                    self._pax_left -= grab
                    if not self._pax_left:
                        self._captured(bytes(self._pax_pending))
                self._skip -= take
                self._offset += take
                view = view[take:]
                continue
            need = BLOCK - len(self._buf)
            self._buf += view[:need]
            self._offset += min(need, len(view))
            view = view[need:]
            if len(self._buf) == BLOCK:
                block = bytes(self._buf)
                self._buf.clear()
                self._header(block)

    def finish(self) -> None:
        if self._ended:
            return
        if self._offset == 0:
            raise LayerError(f"{self.what} is empty: expected a tar archive")
        raise LayerError(f"{self.what} is truncated: the stream ends at byte {self._offset} "
                         f"without the tar end-of-archive marker")

    def _header(self, block: bytes) -> None:
        if self._sparse_ext:
            self._sparse_ext = block[504] != 0
            return
        if block == bytes(BLOCK):
            self._ended = True  # the end marker; an empty archive is just this
            return
        if not _checksum_ok(block):
            if self.members == 0:
                raise LayerError(f"{self.what} is not a tar archive")
            raise LayerError(f"{self.what} is corrupt: bad tar header at byte "
                             f"{self._offset - BLOCK}")
        kind = block[156]
        size = _number(block[124:136], self.what)
        if kind in (ord("x"), ord("g"), ord("L"), ord("K")):
            self._pax_pending.clear()
            self._pax_left = size
            self._captured_kind = kind
        else:
            self.members += 1
            self._check_names(block, kind)
            pax_size = self._pax.get(b"size", b"")
            if pax_size.isdigit():
                size = int(pax_size)
            self._pax = {}
            if kind == ord("S") and block[482] != 0:
                self._sparse_ext = True
        if kind in _NO_DATA_TYPES:
            size = 0  # links, devices, dirs, fifos: any size field is not data
        self._skip = -(-size // BLOCK) * BLOCK

    def _captured(self, data: bytes) -> None:
        """The data of an extended header, complete: what it says of the next member."""
        if self._captured_kind == ord("x"):
            self._pax = _pax_records(data)
        elif self._captured_kind in (ord("L"), ord("K")):
            self._long_names[self._captured_kind] = data.split(b"\0", 1)[0]

    def _check_names(self, block: bytes, kind: int) -> None:
        name = self._long_names.pop(ord("L"), None) or self._pax.get(b"path")
        if name is None:
            name = block[0:100].split(b"\0", 1)[0]
            prefix = block[345:500].split(b"\0", 1)[0] if block[257:262] == b"ustar" else b""
            if prefix:
                name = prefix + b"/" + name
        link = self._long_names.pop(ord("K"), None) or self._pax.get(b"linkpath") \
            or block[157:257].split(b"\0", 1)[0]
        if b".." in name.split(b"/"):
            raise LayerError(f"{self.what}: refusing entry {name.decode(errors='replace')!r}: "
                             "'..' in path")
        if kind == ord("1") and b".." in link.split(b"/"):
            raise LayerError(f"{self.what}: refusing hard link {name.decode(errors='replace')!r}"
                             f" to {link.decode(errors='replace')!r}: '..' in path")


def _checksum_ok(block: bytes) -> bool:
    try:
        stored = int(block[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 32
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)
    return stored in (unsigned, signed)


def _number(field: bytes, what: str) -> int:
    if field[0] & 0x80:  # GNU base-256 for sizes beyond 8 GiB
        value = field[0] & 0x7F
        for byte in field[1:]:
            value = (value << 8) | byte
        return value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise LayerError(f"{what} is corrupt: bad size field {field!r}") from None


def _pax_records(records: bytes) -> dict[bytes, bytes]:
    """The key=value records of a pax extended header (``size``, ``path``, ...)."""
    found: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(records):
        space = records.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(records[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        key, _, value = records[space + 1:pos + length - 1].partition(b"=")
        found[key] = value
        pos += length
    return found
