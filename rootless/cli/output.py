"""How verbs print: Docker's human sizes and durations, aligned tables, and the
small subset of Go templates that ``--format`` users type (``{{.ID}}``,
``{{json .}}``, ``table {{.Repository}}\\t{{.Tag}}``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 3) -> str:
    """Docker's ``units.HumanSizeWithPrecision``: 1000-based, ``4.26MB``, ``512B``."""
    unit = 0
    while size >= 1000 and unit < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """Docker's ``units.HumanDuration``: ``About an hour``, ``3 days``, ``2 weeks``."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def time_ago(stamp: datetime | None, now: datetime | None = None) -> str:
    if stamp is None:
        return "N/A"
    now = now or datetime.now(UTC)
    return human_duration(max((now - stamp).total_seconds(), 0)) + " ago"


def docker_time(stamp: datetime | None) -> str:
    """``2023-05-04 17:20:53 +0000 UTC``, as Docker's CreatedAt column."""
    if stamp is None:
        return ""
    return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def ellipsis(text: str, width: int) -> str:
    """Docker's ``stringutils.Ellipsis``: cut to ``width`` characters ending in '…'."""
    if len(text) <= width:
        return text
    return text[:width - 1] + "…"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                out: TextIO | None = None, padding: int = 3) -> None:
    """Columns aligned like Docker's tabwriter (minimum gap ``padding`` spaces)."""
    out = out or sys.stdout
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=False)]
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i] + padding) if i < len(row) - 1 else cell
                 for i, cell in enumerate(row)]
        out.write("".join(cells).rstrip() + "\n")


_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}")


def _lookup(value: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, Mapping):
            value = value.get(part)
        else:
            value = getattr(value, part, None)
    return value


def _render_value(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_render_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_render_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def render_template(template: str, value: Any) -> str:
    """Expand ``{{.A.B}}``, ``{{json .A}}``, ``{{json .}}`` and ``{{.}}`` in ``template``.

    Escapes ``\\t`` and ``\\n`` as Docker's CLI does. Anything fancier
    (range, if, printf) raises ValueError naming the action.
    """
    template = template.replace("\\t", "\t").replace("\\n", "\n")

    def expand(match: re.Match[str]) -> str:
        action = match.group(1)
        if action.startswith("json "):
            target = action[5:].strip()
            if target == "." or target.startswith("."):
                return json.dumps(_lookup(value, target[1:]), separators=(",", ":"))
        elif action == ".":
            return _render_value(value)
        elif action.startswith(".") and " " not in action:
            return _render_value(_lookup(value, action[1:]))
        raise ValueError(f"unsupported template action {{{{{action}}}}}")

    return _ACTION.sub(expand, template)


def print_formatted(template: str, items: Sequence[Mapping[str, Any]],
                    out: TextIO | None = None,
                    headers: Mapping[str, str] | None = None) -> None:
    """Print ``items`` with a ``--format`` value: ``json``, ``table ...`` or a template.

    ``headers`` names table columns per field as Docker does (``ID`` → ``IMAGE ID``);
    other fields get their name upper-cased. Nothing is printed if the template
    is invalid for any item.
    """
    from rootless.errors import UsageError

    out = out or sys.stdout
    if template == "json":
        out.writelines(json.dumps(item, separators=(",", ":")) + "\n" for item in items)
        return
    table = template.startswith("table")
    body = template[len("table"):].strip() if table else template
    # Docker's list contexts are structs: a field they lack is an error, not "<no value>".
    for name in re.findall(r"{{-?\s*(?:json\s+)?\.(\w+)", body):
        if items and name not in items[0]:
            known = ", ".join(sorted(items[0]))
            raise UsageError(f"invalid --format: can't evaluate field {name}",
                             hint=f"fields: {known}")
    try:
        lines = [render_template(body or "{{json .}}", item) for item in items]
    except ValueError as exc:
        raise UsageError(f"invalid --format: {exc}") from None
    if table and "\t" in body.replace("\\t", "\t"):
        names = re.findall(r"{{\s*\.(\w+)\s*}}", body)
        print_table([(headers or {}).get(n) or _header(n) for n in names],
                    [line.split("\t") for line in lines], out)
        return
    out.writelines(line + "\n" for line in lines)


def _header(field: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", field).upper()
