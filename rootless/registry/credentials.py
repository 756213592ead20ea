"""Registry credentials in Docker's ``config.json``, so `docker login` and ours agree.

The file is ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``).
Lookup order is Docker's: ``credHelpers[host]``, then ``credsStore``, then the
base64 ``auths[host].auth`` (or ``identitytoken``). Helpers are the
``docker-credential-NAME get|store|erase`` programs speaking JSON on stdin/stdout.
We write the file atomically with mode 0600; secrets are never printed or logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rootless.errors import RegistryError

DOCKER_HUB_HOST = "docker.io"
# The key Docker has always used for Docker Hub in config.json.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)


def config_dir() -> Path:
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


def config_path() -> Path:
    return config_dir() / "config.json"


def auth_key(host: str) -> str:
    """The key a host is stored under in ``auths`` (Docker Hub keeps its legacy URL)."""
    return DOCKER_HUB_AUTH_KEY if host in _HUB_ALIASES else host


def _normalise_key(key: str) -> str:
    """``https://host:5000/v1/`` → ``host:5000``, as Docker matches ``auths`` keys."""
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    host = key.split("/", 1)[0]
    return DOCKER_HUB_HOST if host in _HUB_ALIASES else host


def load_config(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: not a JSON object")
    return data


def save_config(data: dict[str, Any], path: Path | None = None) -> None:
    path = path or config_path()
    try:
        _write_private(data, path)
    except OSError as exc:
        raise RegistryError(f"cannot write {path}: {exc.strerror}") from None


def _write_private(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent="\t")
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _helper_for(config: dict[str, Any], host: str) -> str | None:
    helpers = config.get("credHelpers") or {}
    for key, helper in helpers.items():
        if _normalise_key(key) == host and helper:
            return str(helper)
    store = config.get("credsStore")
    return str(store) if store else None


def _run_helper(helper: str, action: str, payload: str) -> str:
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([program, action], input=payload.encode(), capture_output=True,
                              timeout=60)
    except FileNotFoundError:
        raise RegistryError(f"credential helper {program} is not installed",
                            hint="install it or remove it from " + str(config_path())) from None
    except subprocess.TimeoutExpired:
        raise RegistryError(f"credential helper {program} did not answer within 60 s") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        # Helpers report "credentials not found in native keychain" on stdout.
        if "credentials not found" in out.lower():
            return ""
        reason = (out or proc.stderr.decode(errors="replace").strip()).splitlines()
        raise RegistryError(f"credential helper {program} {action} failed: "
                            f"{reason[0] if reason else 'exit ' + str(proc.returncode)}")
    return out


def get_credentials(host: str, config: dict[str, Any] | None = None) -> Credentials | None:
    """The credentials stored for a registry host, or None for anonymous access."""
    host = _normalise_key(host)
    config = load_config() if config is None else config
    helper = _helper_for(config, host)
    if helper:
        out = _run_helper(helper, "get", auth_key(host))
        if not out:
            return None
        try:
            answer = json.loads(out)
            user, secret = str(answer["Username"]), str(answer["Secret"])
        except (ValueError, KeyError, TypeError):
            raise RegistryError(f"credential helper docker-credential-{helper} "
                                "answered something that is not credentials") from None
        if user == "<token>":
            return Credentials("", "", identity_token=secret)
        return Credentials(user, secret)
    for key, entry in (config.get("auths") or {}).items():
        if _normalise_key(key) != host or not isinstance(entry, dict):
            continue
        return _decode_entry(entry, key)
    return None


def _decode_entry(entry: dict[str, Any], key: str) -> Credentials | None:
    user, password = entry.get("username") or "", entry.get("password") or ""
    if entry.get("auth"):
        try:
            raw = base64.b64decode(entry["auth"], validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryError(f"{config_path()}: auths[{key!r}].auth is not valid base64") \
                from None
        user, sep, password = raw.partition(":")
        if not sep:
            raise RegistryError(f"{config_path()}: auths[{key!r}].auth is not USER:PASSWORD")
    token = entry.get("identitytoken") or None
    if not user and not token:
        return None
    return Credentials(user, password, identity_token=token)


def store_credentials(host: str, creds: Credentials) -> Path | str:
    """Save credentials; returns the file written, or the helper's name."""
    host = _normalise_key(host)
    config = load_config()
    helper = _helper_for(config, host)
    if helper:
        payload = json.dumps({"ServerURL": auth_key(host), "Username": creds.username,
                              "Secret": creds.password})
        _run_helper(helper, "store", payload)
        # Docker lists the host in auths (without secrets) so tools know where we logged in.
        config.setdefault("auths", {})[auth_key(host)] = {}
        save_config(config)
        return f"docker-credential-{helper}"
    auths = config.setdefault("auths", {})
    for key in [k for k in auths if _normalise_key(k) == host]:
        del auths[key]
    raw = f"{creds.username}:{creds.password}".encode()
    auths[auth_key(host)] = {"auth": base64.b64encode(raw).decode()}
    save_config(config)
    return config_path()


def erase_credentials(host: str) -> bool:
    """Forget a host's credentials; False when there were none."""
    host = _normalise_key(host)
    config = load_config()
    helper = _helper_for(config, host)
    found = False
    if helper:
        try:
            _run_helper(helper, "erase", auth_key(host))
            found = True
        except RegistryError:
            found = False
    auths = config.get("auths") or {}
    keys = [k for k in auths if _normalise_key(k) == host]
    for key in keys:
        del auths[key]
    if keys:
        save_config(config)
    return found or bool(keys)

