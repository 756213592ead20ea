"""``rootless info``: the ID-mapping mode, the storage driver and every precondition.

Each precondition that fails says what to do about it, instead of the errno
a user would otherwise meet in the middle of a build.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rootless.cli import GlobalOptions


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    remedy: str = ""


def register(verbs: argparse._SubParsersAction, groups: dict[str, Any]) -> None:
    for parent in (verbs, groups["system"]):
        if "info" in getattr(parent, "_name_parser_map", {}):
            continue
        p = parent.add_parser("info", help="Display system-wide information",
                              description="Display system-wide information")
        p.add_argument("-f", "--format", help="'json' for JSON output")
        p.set_defaults(handler=info)
    if "unshare" not in getattr(verbs, "_name_parser_map", {}):
        help_text = ("Run a command in rootless's user namespace (as podman unshare), e.g. to "
                     "remove files a container chowned to sub-IDs")
        p = verbs.add_parser("unshare", help=help_text, description=help_text)
        p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
        p.set_defaults(handler=unshare)


def unshare(opts: GlobalOptions, args: argparse.Namespace) -> int:
    """Exec COMMAND (default $SHELL) as root of a user + mount namespace with the mapping."""
    import sys

    from rootless.sandbox.userns import run_in_userns

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    command = command or [os.environ.get("SHELL") or "/bin/sh"]

    import shutil

    program = shutil.which(command[0])
    if program is None:
        print(f'rootless: exec: "{command[0]}": executable file not found in $PATH',
              file=sys.stderr)
        return 127

    def execute() -> int:
        env = {**os.environ, "ROOTLESS_UNSHARE": "1", "ROOTLESS_ROOT": str(opts.root)}
        try:
            os.execve(program, command, env)
        except OSError as exc:
            print(f"rootless: {command[0]}: {exc.strerror}", file=sys.stderr)
        return 126

    return run_in_userns(execute)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def userns_check() -> Check:
    """Can this user create a user namespace? (tried, not guessed)."""
    from rootless.sandbox import libc

    pid = os.fork()
    if pid == 0:
        try:
            libc.unshare(libc.CLONE_NEWUSER)
            os._exit(0)
        except OSError as exc:
            os._exit(min(exc.errno or 1, 255))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return Check("user namespaces", True, "unprivileged user namespaces work")
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        remedy = "sudo sysctl -w kernel.unprivileged_userns_clone=1"
    elif _read("/proc/sys/user/max_user_namespaces") == "0":
        remedy = "sudo sysctl -w user.max_user_namespaces=15000"
    elif _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        remedy = ("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 "
                  "(or an AppArmor profile allowing userns for rootless)")
    else:
        remedy = ("check kernel.unprivileged_userns_clone, user.max_user_namespaces and "
                  "seccomp/AppArmor policies of the container you run in")
    return Check("user namespaces", False, f"unshare(CLONE_NEWUSER) failed: "
                 f"{os.strerror(code)}", remedy)


def nesting_check() -> Check:
    uid_map = (_read("/proc/self/uid_map") or "").split("\n")
    fields = uid_map[0].split() if uid_map and uid_map[0] else []
    if fields == ["0", "0", "4294967295"]:
        return Check("outer user namespace", True, "not inside a user namespace")
    total = sum(int(line.split()[2]) for line in uid_map if len(line.split()) == 3)
    if total <= 1:
        return Check("outer user namespace", False,
                     "already inside a user namespace that maps a single ID",
                     "only the single-ID mode can work here; for the full mode run rootless "
                     "where the outer runtime maps a range (e.g. podman --userns=auto)")
    return Check("outer user namespace", True, f"inside a user namespace mapping {total} IDs")


def mapping_checks() -> list[Check]:
    import shutil
    import stat

    checks = []
    for tool in ("newuidmap", "newgidmap"):
        path = shutil.which(tool)
        if path is None:
            checks.append(Check(tool, False, "not installed",
                                "sudo apt-get install uidmap (Fedora: shadow-utils)"))
            continue
        st = os.stat(path)
        caps = None
        try:
            caps = os.getxattr(path, "security.capability")
        except OSError:
            pass
        if st.st_mode & stat.S_ISUID and st.st_uid == 0:
            checks.append(Check(tool, True, f"{path} (setuid root)"))
        elif caps:
            checks.append(Check(tool, True, f"{path} (file capabilities)"))
        else:
            checks.append(Check(tool, False, f"{path} has neither the setuid bit nor file "
                                "capabilities", f"sudo chmod u+s {path} (or "
                                f"sudo setcap cap_setuid+ep {path})"))
    from rootless.sandbox.userns import _subid_range, _user_name

    uid = os.geteuid()
    name = _user_name(uid)
    for path, what in (("/etc/subuid", "uids"), ("/etc/subgid", "gids")):
        ids = _subid_range(path, name, uid)
        if ids is None:
            flag = "--add-subuids" if what == "uids" else "--add-subgids"
            checks.append(Check(path, False, f"no subordinate {what} for {name or uid}",
                                f"sudo usermod {flag} 100000-165535 {name or uid}"))
        else:
            checks.append(Check(path, True, f"{ids.count} {what} from {ids.start}"))
    return checks


def fuse_check() -> Check:
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return Check("/dev/fuse", False, "missing",
                     "sudo modprobe fuse (in a container: --device /dev/fuse)")
    except OSError as exc:
        return Check("/dev/fuse", False, f"cannot be opened: {exc.strerror}",
                     "sudo chmod 0666 /dev/fuse (it is 0666 on stock distributions)")
    os.close(fd)
    return Check("/dev/fuse", True, "usable")


def gather(opts: GlobalOptions) -> dict[str, Any]:
    from rootless import __version__
    from rootless.sandbox.seccomp import FAKED_CALLS
    from rootless.sandbox.userns import IdMapping

    checks = [userns_check(), nesting_check(), *mapping_checks(), fuse_check()]
    full = IdMapping.full_or_reason()
    try:
        mapping = IdMapping.detect()
        mode: dict[str, Any] = {"Mode": mapping.mode}
    except Exception as exc:  # a forced mode that cannot work
        mode = {"Mode": "unavailable", "Error": str(exc)}
    if mode["Mode"] == "full" and isinstance(full, IdMapping) and full.subuid:
        mode["Detail"] = (f"container 0 = uid {full.uid}, 1-{full.subuid.count} = "
                          f"{full.subuid.start}-{full.subuid.start + full.subuid.count - 1}")
    elif mode["Mode"] == "single":
        why = full[0] if isinstance(full, tuple) else "ROOTLESS_ID_MAPPING=single"
        mode["Detail"] = (f"container 0 = uid {os.geteuid()} only ({why}); seccomp makes "
                          + ", ".join(FAKED_CALLS) + " report success")
    driver: dict[str, Any]
    try:
        from rootless.cowfs import driver_report, select_driver

        choice = select_driver(opts.storage_driver, opts.root if opts.root.exists() else None)
        driver = {"Name": choice.name, "Reason": choice.reason,
                  "Drivers": driver_report(opts.root if opts.root.exists() else None)}
    except Exception as exc:
        driver = {"Name": "unavailable", "Reason": str(exc)}
    return {"Version": __version__, "Root": str(opts.root), "IdMapping": mode,
            "StorageDriver": driver,
            "Preconditions": [{k.capitalize(): v for k, v in asdict(c).items()}
                              for c in checks]}


def info(opts: GlobalOptions, args: argparse.Namespace) -> int:
    import json

    data = gather(opts)
    if args.format:
        if args.format.strip() in ("json", "{{json .}}"):
            print(json.dumps(data, indent=2))
            return 0
        from rootless.cli.output import render_template

        print(render_template(args.format, data))
        return 0
    print(f"rootless version {data['Version']}")
    print(f" Root: {data['Root']}")
    mode = data["IdMapping"]
    print(f" ID mapping: {mode['Mode']}" + (f" ({mode['Detail']})" if mode.get("Detail")
                                            else f" ({mode.get('Error', '')})"))
    driver = data["StorageDriver"]
    print(f" Storage driver: {driver['Name']} ({driver['Reason']})")
    for name, state in (driver.get("Drivers") or {}).items():
        print(f"  {name}: {state}")
    print(" Preconditions:")
    for check in data["Preconditions"]:
        mark = "ok  " if check["Ok"] else "FAIL"
        print(f"  [{mark}] {check['Name']}: {check['Detail']}")
        if not check["Ok"]:
            print(f"         remedy: {check['Remedy']}")
    return 0
