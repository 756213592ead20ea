"""`.dockerignore` patterns, matched exactly as Docker (moby/patternmatcher) does.

Reading: one pattern a line; surrounding whitespace trimmed; a UTF-8 BOM on the
first line dropped; lines starting with ``#`` are comments; ``!`` marks an
exception; each pattern is cleaned like Go's ``filepath.Clean`` and a leading
``/`` dropped, so ``/foo/../bar/`` means ``bar``.

Matching: a path is ignored when the LAST pattern that matches it, or one of its
parent directories, is not an exception. ``*`` and ``?`` never cross ``/``;
``**`` matches any number of directories (also none); ``[...]`` are classes;
``\\`` escapes the next character.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Regular-expression characters that mean nothing to Go's filepath.Match.
_LITERAL_SPECIALS = frozenset(".+()|{}$")


def clean_path(path: str) -> str:
    """Go's ``filepath.Clean`` on a slash path (``""`` becomes ``"."``)."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    # normpath keeps a leading "//"; Go collapses it.
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str  # cleaned, without the "!"
    exclusion: bool
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.match(path) is not None


def compile_pattern(text: str) -> re.Pattern[str]:
    """Translate one cleaned pattern into an anchored regular expression."""
    out = ["^"]
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "*":
            if i + 1 < n and text[i + 1] == "*":
                i += 2
                if i < n and text[i] == "/":
                    i += 1  # "**/" behaves as "**"
                # "**" at the end accepts everything below; elsewhere any
                # number of whole directories, including none.
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in _LITERAL_SPECIALS:
            out.append("\\" + ch)
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(re.escape(text[i]))
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
        else:
            out.append(re.escape(ch) if ch in "^" else ch)
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        # Go rejects the pattern too ("syntax error in pattern"); Docker then
        # fails the build. Match nothing rather than everything.
        return re.compile(r"(?!x)x")


def parse_dockerignore(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file, cleaned as Docker reads them."""
    patterns: list[str] = []
    for number, raw in enumerate(text.splitlines()):
        line = raw.lstrip("\ufeff") if number == 0 else raw
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = clean_path(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append(("!" + line) if invert else line)
    return patterns


class IgnoreMatcher:
    """Answers "is this context path ignored?" for a list of dockerignore patterns."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            exclusion = raw.startswith("!")
            text = raw[1:] if exclusion else raw
            if not text:
                continue  # a lone "!" matches nothing (Docker rejects it: illegal exclusion)
            text = clean_path(text)
            self.patterns.append(Pattern(text, exclusion, compile_pattern(text)))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def ignored(self, path: str) -> bool:
        """Is the slash-separated context-relative ``path`` ignored?"""
        path = clean_path(path)
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for pattern in self.patterns:
            # An inclusion cannot change an already-ignored path, nor an
            # exception a path nothing ignored yet.
            if pattern.exclusion != matched:
                continue
            hit = pattern.matches(path)
            if not hit and parents:
                hit = any(pattern.matches("/".join(parents[: i + 1]))
                          for i in range(len(parents)))
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_include_below(self, directory: str) -> bool:
        """Could an exception re-include something under an ignored ``directory``?

        Used to prune the walk: with no exception patterns, an ignored
        directory's contents are all ignored.
        """
        if not self.has_exclusions:
            return False
        prefix = clean_path(directory) + "/"
        for pattern in self.patterns:
            if not pattern.exclusion:
                continue
            literal = re.split(r"[*?\[\\]", pattern.text, maxsplit=1)[0]
            if literal.startswith(prefix) or prefix.startswith(literal) or not literal:
                return True
        return False
