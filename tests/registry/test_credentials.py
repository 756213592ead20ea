"""Docker's config.json: auths, credsStore, credHelpers, DOCKER_CONFIG, mode 0600."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from rootless.errors import RegistryError
from rootless.registry.credentials import (
    DOCKER_HUB_AUTH_KEY,
    Credentials,
    config_path,
    erase_credentials,
    get_credentials,
    store_credentials,
)


def write_config(isolated_config: Path, data: dict[str, object]) -> None:
    isolated_config.mkdir(parents=True, exist_ok=True)
    (isolated_config / "config.json").write_text(json.dumps(data))


def test_docker_config_env_is_honoured(isolated_config: Path) -> None:
    assert config_path() == isolated_config / "config.json"


def test_store_writes_docker_format_with_mode_0600(isolated_config: Path) -> None:
    write_config(isolated_config, {"auths": {}, "detachKeys": "ctrl-x"})
    store_credentials("registry.example:5000", Credentials("alice", "pa:ss"))
    path = isolated_config / "config.json"
    assert path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    assert data["detachKeys"] == "ctrl-x"  # other settings survive
    raw = base64.b64decode(data["auths"]["registry.example:5000"]["auth"]).decode()
    assert raw == "alice:pa:ss"
    assert get_credentials("registry.example:5000") == Credentials("alice", "pa:ss")


def test_docker_hub_uses_the_legacy_key_and_aliases(isolated_config: Path) -> None:
    store_credentials("docker.io", Credentials("bob", "pw"))
    data = json.loads((isolated_config / "config.json").read_text())
    assert list(data["auths"]) == [DOCKER_HUB_AUTH_KEY]
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert get_credentials(host) == Credentials("bob", "pw")


def test_keys_written_by_docker_with_scheme_match(isolated_config: Path) -> None:
    auth = base64.b64encode(b"carol:secret").decode()
    write_config(isolated_config, {"auths": {"https://registry.example/v1/": {"auth": auth},
                                             "other.example": {"identitytoken": "refresh"}}})
    assert get_credentials("registry.example") == Credentials("carol", "secret")
    other = get_credentials("other.example")
    assert other is not None and other.identity_token == "refresh"
    assert get_credentials("unknown.example") is None


def test_erase(isolated_config: Path) -> None:
    store_credentials("a.example", Credentials("u", "p"))
    assert erase_credentials("a.example")
    assert get_credentials("a.example") is None
    assert not erase_credentials("a.example")


def test_malformed_config_is_one_clear_error(isolated_config: Path) -> None:
    isolated_config.mkdir(parents=True)
    (isolated_config / "config.json").write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        get_credentials("a.example")


@pytest.fixture
def helper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real docker-credential-* program (the helper protocol), keeping secrets in a file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    db = tmp_path / "helper-db.json"
    script = bin_dir / "docker-credential-testhelper"
    script.write_text(f"""#!/usr/bin/env python3
import json, sys
db = {str(db)!r}
try:
    data = json.load(open(db))
except FileNotFoundError:
    data = {{}}
action, payload = sys.argv[1], sys.stdin.read().strip()
if action == "store":
    entry = json.loads(payload)
    data[entry["ServerURL"]] = entry
elif action == "get":
    if payload not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(data[payload]))
    sys.exit(0)
elif action == "erase":
    data.pop(payload, None)
json.dump(data, open(db, "w"))
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    return db


@pytest.mark.parametrize("setting", ["credsStore", "credHelpers"])
def test_credential_helpers(isolated_config: Path, helper_on_path: Path, setting: str) -> None:
    value: object = "testhelper" if setting == "credsStore" else {"reg.example": "testhelper"}
    write_config(isolated_config, {setting: value})
    assert get_credentials("reg.example") is None
    where = store_credentials("reg.example", Credentials("dave", "hunter2"))
    assert where == "docker-credential-testhelper"
    assert "hunter2" not in (isolated_config / "config.json").read_text()
    assert json.loads(helper_on_path.read_text())["reg.example"]["Secret"] == "hunter2"
    assert get_credentials("reg.example") == Credentials("dave", "hunter2")
    assert erase_credentials("reg.example")
    assert get_credentials("reg.example") is None


def test_missing_helper_is_reported(isolated_config: Path) -> None:
    write_config(isolated_config, {"credsStore": "does-not-exist"})
    with pytest.raises(RegistryError, match="docker-credential-does-not-exist is not installed"):
        get_credentials("reg.example")
