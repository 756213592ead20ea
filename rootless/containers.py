"""Container records: ``<root>/containers/<id>/container.json`` and its writable layer.

::

    containers/<id>/container.json   {"Id", "Name", "Image", "ImageName", "Created",
                                      "Command", "Config": {...how to start it...},
                                      "Driver", "State": {"Status", "Running", "Pid",
                                      "ExitCode", "StartedAt", "FinishedAt"}}
                   /upper /work      the copy-on-write layer (never the image's)
                   /rootfs           where the root filesystem is mounted while running
                   /container.log    output of a detached container

A record is rewritten atomically (tmp file + rename).  ``State.Pid`` is the
host PID of the process that waits for the container (``rootless run`` or the
monitor of ``run -d``); if that process is gone, the container is not running
whatever the record says (a SIGKILLed ``rootless run`` cannot update it).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rootless.errors import ContainerError

_ADJECTIVES = ("admiring", "bold", "brave", "clever", "eager", "focused", "gentle", "happy",
               "jolly", "keen", "lucid", "modest", "nifty", "quirky", "serene", "tender",
               "upbeat", "vibrant", "witty", "zen")
_NAMES = ("albattani", "babbage", "curie", "darwin", "euclid", "fermat", "goodall", "hopper",
          "johnson", "kepler", "lovelace", "meitner", "noether", "pascal", "ritchie", "shannon",
          "turing", "wozniak", "yonath", "zhukovsky")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _process_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass
class Container:
    """One container record and its directory."""

    path: Path
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.doc["Id"])

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return str(self.doc.get("Name") or "").lstrip("/")

    @property
    def upper(self) -> Path:
        return self.path / "upper"

    @property
    def work(self) -> Path:
        return self.path / "work"

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def log_path(self) -> Path:
        return self.path / "container.log"

    @property
    def config(self) -> dict[str, Any]:
        value: dict[str, Any] = self.doc.setdefault("Config", {})
        return value

    @property
    def state(self) -> dict[str, Any]:
        value: dict[str, Any] = self.doc.setdefault("State", {})
        return value

    @property
    def running(self) -> bool:
        """Running, and the process that waits for it is still that process."""
        state = self.state
        if not state.get("Running"):
            return False
        pid = state.get("Pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        return _process_start_time(pid) == state.get("PidStart")

    @property
    def init_pid(self) -> int | None:
        pid = self.state.get("InitPid")
        return pid if isinstance(pid, int) and self.running else None

    def status_text(self, now: datetime | None = None) -> str:
        """Docker's STATUS column: ``Up 3 minutes``, ``Exited (0) 2 hours ago``, ``Created``."""
        from rootless.cli.output import human_duration

        now = now or datetime.now(UTC)
        if self.running:
            started = parse_iso(self.state.get("StartedAt")) or now
            return "Up " + human_duration((now - started).total_seconds())
        finished = parse_iso(self.state.get("FinishedAt"))
        if self.state.get("StartedAt") and finished is None and self.state.get("Running"):
            return "Exited (137) Less than a second ago"  # its rootless run was killed
        if finished is None:
            return "Created"
        return (f"Exited ({self.state.get('ExitCode', 0)}) "
                f"{human_duration((now - finished).total_seconds())} ago")

    def save(self) -> None:
        """Rewrite the record atomically; nothing if the container is gone (a ``--rm``
        container can finish, and be removed, before its start is recorded)."""
        data = json.dumps(self.doc, indent=1, sort_keys=True).encode()
        tmp = self.path / f".container.json.{os.getpid()}"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.path / "container.json")
        except FileNotFoundError:
            if self.path.exists():
                raise

    def mark_running(self, pid: int, init_pid: int) -> None:
        self.state.update({"Status": "running", "Running": True, "Pid": pid,
                           "PidStart": _process_start_time(pid), "InitPid": init_pid,
                           "StartedAt": now_iso(), "FinishedAt": None, "ExitCode": None})
        self.save()

    def mark_exited(self, code: int) -> None:
        self.state.update({"Status": "exited", "Running": False, "Pid": 0, "InitPid": 0,
                           "ExitCode": code, "FinishedAt": now_iso()})
        self.save()


class Containers:
    """The containers of one store."""

    def __init__(self, containers_dir: Path) -> None:
        self.dir = containers_dir

    def create(self, *, image_id: str, image_name: str, command: list[str],
               config: dict[str, Any], name: str | None = None) -> Container:
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = self.all()
        if name is not None:
            if any(c.name == name for c in existing):
                raise ContainerError(
                    f'Conflict. The container name "/{name}" is already in use',
                    hint=f"remove it with 'rootless rm {name}' or choose another --name")
        else:
            taken = {c.name for c in existing}
            name = next(n for n in (_random_name() for _ in range(100)) if n not in taken)
        cid = os.urandom(32).hex()
        path = self.dir / cid
        path.mkdir()
        for sub in ("upper", "work", "rootfs"):
            (path / sub).mkdir()
        container = Container(path, {
            "Id": cid, "Name": f"/{name}", "Image": image_id, "ImageName": image_name,
            "Created": now_iso(), "Command": command, "Config": config,
            "State": {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0},
        })
        container.save()
        return container

    def all(self) -> list[Container]:
        found = []
        for record in self.dir.glob("*/container.json"):
            try:
                doc = json.loads(record.read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and "Id" in doc:
                found.append(Container(record.parent, doc))
        found.sort(key=lambda c: str(c.doc.get("Created", "")), reverse=True)
        return found

    def get(self, name_or_id: str) -> Container:
        """By name, full ID or unique ID prefix (ContainerError otherwise)."""
        wanted = name_or_id.lstrip("/")
        matches = []
        for container in self.all():
            if wanted in (container.id, container.name):
                return container
            if container.id.startswith(wanted):
                matches.append(container)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ContainerError(f"container ID prefix {name_or_id!r} is ambiguous")
        raise ContainerError(f"No such container: {name_or_id}")

    def remove(self, container: Container, *, force: bool = False) -> None:
        """Delete the record and its writable layer (even files owned by sub-IDs)."""
        if container.running:
            if not force:
                raise ContainerError(
                    f"cannot remove container {container.short_id}: container is running",
                    hint="stop it first, or use rm -f")
            import signal
            import time

            os.kill(int(container.state["Pid"]), signal.SIGKILL)
            deadline = time.monotonic() + 10
            while container.running and time.monotonic() < deadline:
                time.sleep(0.01)  # polling the process table with a deadline
        remove_tree(container.path)


def _random_name() -> str:
    return f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"


def remove_tree(path: Path) -> None:
    """Remove PATH; files the container chowned to sub-IDs need its user namespace.

    Right after a container exits the kernel may still be tearing its overlayfs
    down (its work directory changes under us): such failures are retried for
    a moment.
    """
    import time

    from rootless.fsutil import force_rmtree

    deadline = time.monotonic() + 5
    while True:
        try:
            force_rmtree(path)
            return
        except FileNotFoundError:
            return
        except PermissionError:
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ContainerError(f"cannot remove {path}: {exc.strerror}") from None
            time.sleep(0.01)
    from rootless.sandbox.userns import run_in_userns

    def remove() -> int:
        force_rmtree(path)
        return 0

    if run_in_userns(remove) != 0 or path.exists():
        raise ContainerError(f"cannot remove {path}",
                             hint=f"remove it with: rootless unshare rm -rf {path}")
