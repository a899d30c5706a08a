"""The lock files pin what pyproject.toml asks for: every dependency of the production install in
requirements.lock and of `make install` (dev and local extras) in requirements-dev.lock, at a version its
requirement allows. When this fails, run `make lock` and commit both files."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", flags=re.MULTILINE)


def locked(name: str) -> dict[str, Version]:
    text = (ROOT / name).read_text()
    return {canonicalize_name(package): Version(version) for package, version in PINNED.findall(text)}


def requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", ()), ("requirements-dev.lock", ("dev", "local"))]
)
def test_every_requirement_is_locked_at_an_allowed_version(lock: str, extras: tuple[str, ...]) -> None:
    pins = locked(lock)
    stale = []
    for requirement in requirements(*extras):
        version = pins.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            stale.append(f"{requirement} (locked: {version})")
    assert not stale, f"run `make lock`: {stale}"


def test_production_lock_has_no_development_packages() -> None:
    """The image installs requirements.lock: no broker, code generator or test tools in it."""
    development = {canonicalize_name(requirement.name) for requirement in requirements("dev", "local")}
    production = {canonicalize_name(requirement.name) for requirement in requirements()}
    assert not (development - production) & locked("requirements.lock").keys()
