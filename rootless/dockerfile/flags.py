"""Builder flags (``--name[=value]`` before an instruction's arguments) and RUN mounts.

Which flags each instruction takes, and their kinds, follow BuildKit's ``BFlags``
use in ``instructions/parse.go`` and ``runmount.go``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from rootless.dockerfile.ir import RunMount
from rootless.dockerfile.words import did_you_mean
from rootless.errors import DockerfileSyntaxError

ErrorAt = Callable[[str, int | None], DockerfileSyntaxError]


class Kind(Enum):
    STRING = "string"
    BOOL = "bool"
    MULTI = "multi"  # a string that may be repeated


FLAGS: dict[str, dict[str, Kind]] = {
    "FROM": {"platform": Kind.STRING},
    "RUN": {"mount": Kind.MULTI, "network": Kind.STRING, "security": Kind.STRING},
    "COPY": {"from": Kind.STRING, "chown": Kind.STRING, "chmod": Kind.STRING,
             "link": Kind.BOOL, "parents": Kind.BOOL, "exclude": Kind.MULTI},
    "ADD": {"chown": Kind.STRING, "chmod": Kind.STRING, "link": Kind.BOOL,
            "parents": Kind.BOOL, "exclude": Kind.MULTI, "checksum": Kind.STRING,
            "keep-git-dir": Kind.BOOL, "unpack": Kind.BOOL},
    "HEALTHCHECK": {"interval": Kind.STRING, "timeout": Kind.STRING,
                    "start-period": Kind.STRING, "start-interval": Kind.STRING,
                    "retries": Kind.STRING},
}


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    value: str | None  # None: written without "="
    offset: int  # of the leading "--" in the logical line


def parse_flag(token: str, offset: int) -> Flag:
    """``--name=value`` with quotes removed and ``\\`` escapes applied (BuildKit's
    extractBuilderFlags always uses backslash here, whatever ``# escape=`` says)."""
    text = _unquote(token[2:])
    name, sep, value = text.partition("=")
    return Flag(name, value if sep else None, offset)


def _unquote(text: str) -> str:
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            out.append(text[i])
        elif ch != "\\":
            out.append(ch)
        i += 1
    return "".join(out)


@dataclass(slots=True)
class FlagValues:
    """The checked flags of one instruction."""

    given: dict[str, Flag] = field(default_factory=dict)
    repeated: dict[str, list[Flag]] = field(default_factory=dict)
    error: ErrorAt | None = None

    def string(self, name: str) -> str | None:
        flag = self.given.get(name)
        return flag.value or None if flag is not None else None

    def boolean(self, name: str) -> bool:
        flag = self.given.get(name)
        return flag is not None and (flag.value is None or flag.value.lower() == "true")

    def multi(self, name: str) -> list[tuple[str, int]]:
        return [(f.value or "", f.offset) for f in self.repeated.get(name, [])]

    def optional_boolean(self, name: str) -> bool | None:
        """None when the flag is absent (the instruction's default applies)."""
        return self.boolean(name) if name in self.given else None

    def offset(self, name: str) -> int | None:
        flag = self.given.get(name)
        return flag.offset if flag else None

    def _fail(self, message: str, name: str) -> DockerfileSyntaxError:
        assert self.error is not None
        return self.error(message, self.offset(name))

    def duration(self, name: str) -> int | None:
        text = self.string(name)
        if text is None:
            return None
        nanos = parse_go_duration(text)
        if nanos is None:
            raise self._fail(f"--{name}: invalid duration {text!r} (e.g. 30s, 1m30s)", name)
        if nanos < 1_000_000:
            raise self._fail(f"--{name} cannot be less than 1ms", name)
        return nanos

    def retries(self, name: str) -> int | None:
        text = self.string(name)
        if text is None:
            return None
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise self._fail(f"--{name} must be an integer, not {text!r}", name)
        value = int(text)
        if value < 1:
            raise self._fail(f"--{name} must be at least 1 (not {value})", name)
        return value


def check(keyword: str, flags: tuple[Flag, ...], error: ErrorAt) -> FlagValues:
    """The instruction's flags checked against what it accepts."""
    allowed = FLAGS.get(keyword, {})
    values = FlagValues(error=error)
    for flag in flags:
        kind = allowed.get(flag.name)
        if kind is None:
            hint = did_you_mean(flag.name, allowed, prefix="--")
            raise error(f"unknown flag for {keyword}: --{flag.name}{hint}", flag.offset)
        if kind is Kind.MULTI:
            if flag.value is None:
                raise error(f"--{flag.name} requires a value (--{flag.name}=...)", flag.offset)
            values.repeated.setdefault(flag.name, []).append(flag)
            continue
        if flag.name in values.given:
            raise error(f"duplicate flag specified: --{flag.name}", flag.offset)
        if kind is Kind.STRING and flag.value is None:
            raise error(f"--{flag.name} requires a value (--{flag.name}=...)", flag.offset)
        if kind is Kind.BOOL and flag.value is not None \
                and flag.value.lower() not in ("true", "false"):
            raise error(f"expecting boolean value for flag --{flag.name}, not: {flag.value}",
                        flag.offset)
        values.given[flag.name] = flag
    return values


_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NANOS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
               "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(text: str) -> int | None:
    """Nanoseconds of a Go duration ("1h30m", "2.5s", "0"); None if it is not one."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    if not body:
        return None
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            return None
        total += float(match.group(1)) * _UNIT_NANOS[match.group(2)]
        pos = match.end()
    return sign * round(total)


# --- RUN --mount ---------------------------------------------------------------------

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = {
    "bind": {"target", "source", "from", "readonly", "readwrite"},
    "cache": {"target", "source", "from", "readonly", "readwrite", "id", "sharing", "mode",
              "uid", "gid"},
    "tmpfs": {"target", "size"},
    "secret": {"target", "id", "source", "required", "mode", "uid", "gid", "env"},
    "ssh": {"target", "id", "required", "mode", "uid", "gid"},
}
_ALIASES = {"dst": "target", "destination": "target", "src": "source", "ro": "readonly",
            "rw": "readwrite", "type": "type"}
_BOOL_KEYS = {"readonly", "readwrite", "required"}
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(i?b?)$", re.IGNORECASE)


def parse_mount(value: str, offset: int, error: ErrorAt) -> RunMount:
    """One ``--mount=`` value (comma-separated key=value, CSV quoting) as a RunMount."""
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as exc:
        raise error(f"--mount: {exc}", offset) from None
    options: dict[str, str | None] = {}
    for item in fields:
        key, sep, val = item.partition("=")
        key = key.strip().lower()
        key = _ALIASES.get(key, key)
        options[key] = val if sep else None
    mount_type = (options.pop("type", None) or "bind").lower()
    if mount_type not in MOUNT_TYPES:
        raise error(f"unsupported mount type {mount_type!r} "
                    f"(use {', '.join(MOUNT_TYPES)})", offset)
    allowed = _MOUNT_KEYS[mount_type]
    for key, given in options.items():
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            raise error(f"unexpected key {key!r} for a {mount_type} mount{hint}", offset)
        if given is None and key not in _BOOL_KEYS:
            raise error(f"--mount option {key!r} requires a value ({key}=...)", offset)

    def boolean(key: str) -> bool | None:
        if key not in options:
            return None
        val = options[key]
        if val is None or val.lower() in ("true", "1"):
            return True
        if val.lower() in ("false", "0"):
            return False
        raise error(f"invalid value for {key}: {val!r} (true or false)", offset)

    def integer(key: str, base: int = 10) -> int | None:
        val = options.get(key)
        if val is None:
            return None
        try:
            return int(val, base)
        except ValueError:
            raise error(f"invalid value for {key}: {val!r}", offset) from None

    target: str | None = options.get("target")
    mount_id: str | None = options.get("id")
    if mount_type in ("bind", "cache", "tmpfs") and not target:
        raise error(f"a {mount_type} mount requires a target (target=/path)", offset)
    # Read-only unless asked otherwise, except for the writable kinds (BuildKit's roAuto).
    readonly = mount_type not in ("cache", "tmpfs")
    if "readwrite" in options:
        readonly = not boolean("readwrite")
    if "readonly" in options:
        readonly = bool(boolean("readonly"))
    sharing = None
    if mount_type == "cache":
        sharing = (options.get("sharing") or "shared").lower()
        if sharing not in ("shared", "private", "locked"):
            raise error(f"unsupported sharing value {sharing!r} (shared, private or locked)",
                        offset)
        mount_id = mount_id or target
    if mount_type == "secret":
        if mount_id and options.get("source"):
            raise error("a secret mount takes an id or a source, not both", offset)
        mount_id = mount_id or options.get("source")
        if not mount_id and target:
            mount_id = target.rstrip("/").rsplit("/", 1)[-1]
        if not mount_id:
            raise error("a secret mount requires an id or a target", offset)
        if not target and not options.get("env"):
            target = f"/run/secrets/{mount_id}"
    if mount_type == "ssh":
        mount_id = mount_id or "default"
    mode = integer("mode", 8)
    if mode is None and mount_type in ("secret", "ssh"):
        mode = 0o400 if mount_type == "secret" else 0o600
    return RunMount(
        type=mount_type,
        target=target,
        source=options.get("source"),
        from_=options.get("from"),
        readonly=readonly,
        id=mount_id,
        sharing=sharing,
        mode=mode,
        uid=integer("uid"),
        gid=integer("gid"),
        size=_size(options.get("size"), offset, error),
        required=bool(boolean("required")),
        env=options.get("env"),
        original=value,
    )


def _size(text: str | None, offset: int, error: ErrorAt) -> int | None:
    if text is None:
        return None
    match = _SIZE.match(text.strip())
    if match is None:
        raise error(f"invalid size {text!r} (e.g. 64m)", offset)
    number = float(match.group(1))
    power = " kmgtp".index(match.group(2).lower() or " ")
    return int(number * 1024**power)
