"""Parser directives (``# syntax=``, ``# escape=``, ``# check=``): a pure pre-pass.

Directives are comments at the very top of the file. As in BuildKit, the first line
that is not a well-formed *known* directive (an instruction, a blank line, any other
comment, an unknown ``# key=value``) ends the search; later directive-looking lines
are plain comments. The lines stay in the text (the scanner skips them as comments),
so line numbers never shift.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rootless.dockerfile.ir import Directive
from rootless.errors import DockerfileSyntaxError, Location

KNOWN_DIRECTIVES = ("syntax", "escape", "check")
ESCAPE_CHARS = ("\\", "`")

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


def read_directives(
    lines: Sequence[str], filename: str = "Dockerfile"
) -> tuple[tuple[Directive, ...], str]:
    """The directives at the top of ``lines`` (newlines already removed) and the
    escape character they choose (``\\`` unless ``# escape=`` says otherwise)."""
    found: list[Directive] = []
    escape = "\\"
    for number, line in enumerate(lines, start=1):
        text = line.lstrip()
        match = _DIRECTIVE.match(text)
        if match is None or match.group(1).lower() not in KNOWN_DIRECTIVES:
            break
        name, value = match.group(1).lower(), match.group(2)
        column = len(line) - len(text) + 1
        loc = Location(filename, number, column)
        if any(d.name == name for d in found):
            raise DockerfileSyntaxError(
                f"only one {name} parser directive can be used", loc, source_line=line)
        if name == "escape":
            if value not in ESCAPE_CHARS:
                raise DockerfileSyntaxError(
                    f"invalid escape character {value!r}: use \\ or `", loc, source_line=line)
            escape = value
        found.append(Directive(name=name, value=value, loc=loc))
    return tuple(found), escape
