"""Platform choice from manifest lists, as Docker makes it."""

from __future__ import annotations

from typing import Any

import pytest

from rootless.errors import UsageError
from rootless.registry.platforms import Platform, parse_platform, select_manifest


def index(*platforms: dict[str, str]) -> dict[str, Any]:
    return {"manifests": [{"digest": f"sha256:{n:064x}", "platform": p}
                          for n, p in enumerate(platforms)]}


def chosen(doc: dict[str, Any], wanted: str) -> int | None:
    entry = select_manifest(doc, parse_platform(wanted))
    return None if entry is None else int(entry["digest"][7:], 16)


def test_parse_platform_forms() -> None:
    assert parse_platform("linux/amd64") == Platform("linux", "amd64")
    assert parse_platform("arm64") == Platform("linux", "arm64")
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64")
    assert parse_platform("linux/x86_64") == Platform("linux", "amd64")
    assert str(parse_platform("linux/arm/v7")) == "linux/arm/v7"
    with pytest.raises(UsageError):
        parse_platform("linux//")


def test_exact_match_and_first_wins() -> None:
    doc = index({"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"},
                {"os": "linux", "architecture": "amd64"})
    assert chosen(doc, "linux/amd64") == 0
    assert chosen(doc, "linux/arm64/v8") == 1
    assert chosen(doc, "linux/riscv64") is None


def test_arm_variants_prefer_the_closest_compatible() -> None:
    doc = index({"os": "linux", "architecture": "arm", "variant": "v5"},
                {"os": "linux", "architecture": "arm", "variant": "v6"},
                {"os": "linux", "architecture": "arm", "variant": "v7"})
    assert chosen(doc, "linux/arm/v7") == 2
    assert chosen(doc, "linux/arm/v6") == 1
    only_v6 = index({"os": "linux", "architecture": "arm", "variant": "v6"})
    assert chosen(only_v6, "linux/arm/v7") == 0
    assert chosen(index({"os": "linux", "architecture": "arm", "variant": "v7"}),
                  "linux/arm/v6") is None


def test_attestation_entries_are_skipped() -> None:
    doc = index({"os": "unknown", "architecture": "unknown"},
                {"os": "linux", "architecture": "amd64"})
    assert chosen(doc, "linux/amd64") == 1


def test_arm64_v8_variant_equals_no_variant() -> None:
    doc = index({"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert chosen(doc, "linux/arm64") == 0
