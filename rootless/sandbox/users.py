"""Docker's ``-u``/USER resolution through the image's /etc/passwd and /etc/group."""

from __future__ import annotations

import os
from dataclasses import dataclass

from rootless.errors import SandboxError


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    name: str | None


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f
                    if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(spec: str, root: str = "/") -> ResolvedUser:
    """USER SPEC (``name``, ``uid``, ``name:group``, ``uid:gid``...) as IDs.

    As Docker: a numeric uid missing from passwd is fine (gid 0 unless given,
    home /); a name must exist; a group name must exist in /etc/group;
    supplementary groups are those listing the user by name, unless the group
    was given explicitly.
    """
    user_part, _, group_part = (spec or "0").partition(":")
    passwd = _read_db(os.path.join(root, "etc/passwd"))
    groups_db = _read_db(os.path.join(root, "etc/group"))
    entry = None
    for fields in passwd:
        if len(fields) >= 7 and (fields[0] == user_part or fields[2] == user_part):
            if fields[0] == user_part or entry is None:
                entry = fields
            if fields[0] == user_part:
                break
    if entry is not None:
        uid, gid, home, name = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    elif user_part.isdigit():
        uid, gid, home, name = int(user_part), 0, "/", None
    else:
        raise SandboxError(f"unable to find user {user_part}: no matching entries in passwd file")
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            match = [g for g in groups_db if len(g) >= 3 and g[0] == group_part]
            if not match:
                raise SandboxError(
                    f"unable to find group {group_part}: no matching entries in group file")
            gid = int(match[0][2])
        return ResolvedUser(uid, gid, (gid,), home, name)
    extra = [int(g[2]) for g in groups_db
             if len(g) >= 4 and name is not None and name in g[3].split(",") and g[2].isdigit()]
    return ResolvedUser(uid, gid, tuple(dict.fromkeys([gid, *extra])), home, name)
