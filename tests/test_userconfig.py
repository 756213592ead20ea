"""The user's config file: storage driver and store root, below flags and environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rootless.errors import UsageError
from rootless.userconfig import UserConfig, load_user_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_missing_file_is_no_configuration(tmp_path: Path) -> None:
    assert load_user_config(tmp_path / "absent.toml") == UserConfig()


def test_driver_and_root_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path, '[storage]\ndriver = "vfs"\nroot = "~/store"\n')
    assert load_user_config(path) == UserConfig("vfs", Path.home() / "store")


@pytest.mark.parametrize(("text", "message"), [
    ('[storage]\ndriver = "zfs"\n', "storage.driver is 'zfs'"),
    ('[storage]\ndrvier = "vfs"\n', "unknown key storage.drvier"),
    ('storage = 3\n', "'storage' must be a table"),
    ('[registries]\n', "unknown section or key 'registries'"),
    ('[storage]\ndriver = "vfs\n', "line 2"),
])
def test_a_broken_file_is_an_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_user_config(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def _rootless(*args: str, config: Path, extra_env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ROOTLESS_ROOT", "ROOTLESS_STORAGE_DRIVER")}
    env.update({"ROOTLESS_CONFIG": str(config), **(extra_env or {})})
    return subprocess.run(["rootless", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_the_cli_takes_the_store_and_driver_from_the_file_below_flags_and_env(
        tmp_path: Path, busybox_tar: Path) -> None:
    store = tmp_path / "configured-store"
    config = _write(tmp_path, f'[storage]\ndriver = "vfs"\nroot = "{store}"\n')
    _rootless("import", str(busybox_tar), "cfg:1", config=config).check_returncode()
    assert (store / "index.json").is_file()
    assert "cfg:1" in _rootless("images", "--format", "{{.Repository}}:{{.Tag}}",
                                config=config).stdout
    info = _rootless("info", config=config).stdout
    assert "Storage driver: vfs" in info
    flagged = _rootless("--storage-driver", "auto", "info", config=config).stdout
    assert "Storage driver: vfs" not in flagged
    from_env = _rootless("info", config=config,
                         extra_env={"ROOTLESS_STORAGE_DRIVER": "auto"}).stdout
    assert "Storage driver: vfs" not in from_env


def test_the_cli_reports_a_broken_file_in_one_line(tmp_path: Path) -> None:
    config = _write(tmp_path, '[storage]\ndriver = "zfs"\n')
    result = _rootless("images", config=config)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"rootless: {config}: storage.driver is 'zfs'"
    assert "Traceback" not in result.stderr
