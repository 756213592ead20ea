"""Physical lines → logical lines: the part of Dockerfile syntax that is about lines.

This is BuildKit's line scanner (``parser.Parse``), kept separate from the grammar
because a fixed Lark terminal can follow neither ``# escape=`` nor heredocs:

- a UTF-8 byte-order mark is dropped, ``\\r\\n`` ends a line like ``\\n``;
- lines whose first non-blank character is ``#`` are comments, blank lines are skipped;
- the escape char at the end of a line (not itself escaped) continues the instruction
  on the next line; comment lines and blank lines inside a continuation are skipped;
  continuation lines keep their leading whitespace, the first line loses it;
- after a RUN/COPY/ADD (also under ONBUILD) in shell form, each ``<<WORD`` reads a
  here-document body from the following lines, in order.

Each logical line remembers where its pieces came from, so a column in the joined
text maps back to a physical line and column.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cache

from rootless.dockerfile.ir import Heredoc
from rootless.dockerfile.words import HEREDOC_WORD, json_array, split_words
from rootless.errors import DockerfileSyntaxError, Location

_HEREDOC_INSTRUCTIONS = frozenset(("run", "copy", "add"))
_LEADING_TABS = re.compile(r"(?m)^\t+")
_MAX_LINE = 2**63  # sorts after any (offset, line, column) piece with the same offset


@cache
def _continuation(escape: str) -> re.Pattern[str]:
    # The escape char, then only blanks, at the end of the line, unless the escape
    # char is itself escaped (BuildKit's lineContinuationRegex).
    e = re.escape(escape)
    return re.compile(rf"(^|[^{e}]){e}[ \t]*$")


@dataclass(frozen=True, slots=True)
class LogicalLine:
    """One instruction's text with continuations joined, and where it came from."""

    text: str
    start_line: int
    end_line: int  # the last physical line, heredoc bodies included
    # (offset in text, physical line, 0-based column) for each joined piece
    pieces: tuple[tuple[int, int, int], ...]
    heredocs: tuple[Heredoc, ...] = ()
    empty_continuations: tuple[int, ...] = ()  # blank lines skipped inside the instruction

    def position(self, offset: int) -> tuple[int, int]:
        """The physical (line, 1-based column) of ``text[offset]``."""
        index = max(bisect.bisect_right(self.pieces, (offset, _MAX_LINE)) - 1, 0)
        start, line, column = self.pieces[index]
        return line, column + (offset - start) + 1


@dataclass(frozen=True, slots=True)
class Scanned:
    lines: tuple[LogicalLine, ...]
    physical: tuple[str, ...]  # every physical line, line ending removed
    filename: str

    def location(self, line: LogicalLine, offset: int = 0) -> Location:
        number, column = line.position(offset)
        return Location(self.filename, number, column, line.end_line)

    def error(self, message: str, line: LogicalLine, offset: int = 0) -> DockerfileSyntaxError:
        number, column = line.position(offset)
        loc = Location(self.filename, number, column, line.end_line)
        return DockerfileSyntaxError(message, loc, source_line=self.source(number, column))

    def source(self, number: int, column: int = 1) -> str:
        text = self.physical[number - 1] if 0 < number <= len(self.physical) else ""
        return printable_line(text, column)


def printable_line(text: str, column: int = 1) -> str:
    """The line as shown above a caret: one visible cell per character, so tabs (which
    would move the caret) become spaces and control characters become U+FFFD; a long
    line is cut some way after the caret's column."""
    keep = max(column + 60, 120)
    tail = " …" if len(text) > keep else ""
    return "".join(" " if ch == "\t" else ch if ch.isprintable() else "\ufffd"
                   for ch in text[:keep]) + tail


def physical_lines(text: str) -> list[str]:
    """The file's lines, each with its own ending (``\\n``, ``\\r\\n`` or none at EOF)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _chomp(line: str) -> str:
    return line.rstrip("\r\n")


def scan(text: str, escape: str = "\\", filename: str = "Dockerfile") -> Scanned:
    raw = physical_lines(text)
    physical = tuple(_chomp(line) for line in raw)
    continuation = _continuation(escape)
    result: list[LogicalLine] = []
    i, n = 0, len(raw)
    while i < n:
        content = physical[i]
        i += 1
        stripped = content.lstrip()
        if stripped.startswith("#"):
            continue
        first, more = _trim(stripped, continuation)
        if not more and not first:
            continue
        start = i
        pieces = [(0, i, len(content) - len(stripped))]
        parts = [first]
        length = len(first)
        empty: list[int] = []
        while more and i < n:
            content = physical[i]
            i += 1
            bare = content.lstrip()
            if not bare:
                empty.append(i)
                continue
            if bare.startswith("#"):
                continue
            piece, more = _trim(content, continuation)
            pieces.append((length, i, 0))
            parts.append(piece)
            length += len(piece)
        joined = "".join(parts)
        if not joined.strip():
            continue  # only continuation characters: nothing to parse
        logical = LogicalLine(joined, start, i, tuple(pieces), (), tuple(empty))
        markers = heredoc_markers(joined, escape)
        if markers:
            bodies, i = _read_heredocs(logical, markers, raw, physical, i, filename)
            logical = LogicalLine(joined, start, max(i, start), tuple(pieces), bodies,
                                  tuple(empty))
        result.append(logical)
    return Scanned(tuple(result), physical, filename)


def _trim(line: str, continuation: re.Pattern[str]) -> tuple[str, bool]:
    match = continuation.search(line)
    if match is None:
        return line, False
    return line[: match.start()] + match.group(1), True


@dataclass(frozen=True, slots=True)
class HeredocMarker:
    word: str  # as written, e.g. <<-"EOF"
    name: str
    expand: bool
    strip_tabs: bool
    offset: int


def heredoc_markers(text: str, escape: str = "\\") -> list[HeredocMarker]:
    """The ``<<WORD`` markers of a logical line that can carry heredocs."""
    if "<<" not in text:
        return []
    words = split_words(text, escape)
    index = 1
    keyword = words[0].text.lower() if words else ""
    if keyword == "onbuild" and len(words) > 1:
        keyword, index = words[1].text.lower(), 2
    if keyword not in _HEREDOC_INSTRUCTIONS:
        return []
    while index < len(words) and words[index].text.startswith("--"):
        index += 1
    if index < len(words):
        try:
            if json_array(text[words[index].offset:]) is not None:
                return []
        except ValueError:
            return []
    markers = []
    for word in words[index:]:
        match = HEREDOC_WORD.match(word.text)
        if match is None or not match.group(3):
            continue
        quoted = match.group(3)
        name = _unquote(quoted, escape)
        if not name or any(ch.isspace() for ch in name):
            continue
        expand = not any(q in quoted for q in "'\"")
        markers.append(HeredocMarker(word.text, name, expand, match.group(2) == "-", word.offset))
    return markers


def _unquote(word: str, escape: str) -> str:
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(word):
        ch = word[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote == '"' and i + 1 < len(word):
                i += 1
                out.append(word[i])
            else:
                out.append(ch)
        elif ch in "'\"":
            quote = ch
        elif ch == escape and i + 1 < len(word):
            i += 1
            out.append(word[i])
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _read_heredocs(
    logical: LogicalLine,
    markers: list[HeredocMarker],
    raw: list[str],
    physical: tuple[str, ...],
    i: int,
    filename: str,
) -> tuple[tuple[Heredoc, ...], int]:
    bodies: list[Heredoc] = []
    for marker in markers:
        body: list[str] = []
        first = i + 1
        while i < len(raw):
            line = raw[i]
            i += 1
            candidate = physical[i - 1]
            if marker.strip_tabs:
                candidate = candidate.lstrip("\t")
            if candidate == marker.name:
                break
            body.append(line)
        else:
            number, column = logical.position(marker.offset)
            source = printable_line(physical[number - 1], column)
            raise DockerfileSyntaxError(
                f"unterminated heredoc {marker.word} started at line {number}",
                Location(filename, number, column, len(raw)), source_line=source)
        content = "".join(body)
        if marker.strip_tabs:
            content = _LEADING_TABS.sub("", content)
        number, column = logical.position(marker.offset)
        bodies.append(Heredoc(name=marker.name, content=content, expand=marker.expand,
                              strip_tabs=marker.strip_tabs,
                              loc=Location(filename, number, column, max(first, i))))
    return tuple(bodies), i
