"""Splitting an instruction's argument text into words, as BuildKit does.

Words keep their quotes and escapes (removing them is part of expansion, see
``expand.py``), and each word knows its offset so errors can point at it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

BLANKS = re.compile(r"[ \t\v\f\r]+")
"""What BuildKit splits an instruction name and blank-separated arguments at (ASCII
blanks only, unlike quoted word splitting, which uses every Unicode space)."""

HEREDOC_WORD = re.compile(r"^(\d*)<<(-?)([^<]*)$")
"""A word that opens a here-document: optional fd, ``<<``, optional ``-``, the name."""


def did_you_mean(word: str, choices: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean X?)`` for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""

# Go's unicode.IsSpace, which BuildKit uses between words.
_SPACE = frozenset(" \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                   "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    offset: int  # index of the word's first character in the split string


def split_words(text: str, escape: str = "\\") -> list[Word]:
    """Whitespace-separated words; quotes group, the escape char protects the next char.

    Quotes and escapes stay in the words. An escape char at the very end is dropped
    (it was a line continuation at end of file).
    """
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _SPACE:
            i += 1
        if i >= n:
            break
        start = i
        chars: list[str] = []
        quote = ""
        while i < n:
            ch = text[i]
            if not quote and ch in _SPACE:
                break
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == escape and quote != "'" and i + 1 < n:
                    chars.append(ch)
                    i += 1
                    ch = text[i]
            elif ch in "'\"":
                quote = ch
            elif ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                chars.append(ch)
                i += 1
                ch = text[i]
            chars.append(ch)
            i += 1
        words.append(Word("".join(chars), start))
    return words


# Go's JSON decoder turns an unpaired \ud800-style escape into U+FFFD; Python keeps it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotString(Exception):
    pass


def _reject_constant(_value: str) -> Any:
    raise _NotString


def json_array(text: str) -> tuple[str, ...] | None:
    """The strings of a JSON array at the start of ``text``, or None if it is not one.

    Like Go's ``json.Decoder.Decode`` in BuildKit, only the first JSON value is read
    (anything after the closing bracket is ignored). A well-formed array holding a
    non-string raises ``ValueError``: Docker reports that rather than falling back
    to the shell form.
    """
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return None
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    try:
        value, _end = decoder.raw_decode(stripped)
    except (ValueError, _NotString, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return tuple(_LONE_SURROGATE.sub("\ufffd", item) for item in value)
