"""The import contract in pyproject.toml ([tool.importlinter]): no service package imports another, and
services.core and the protos import none. `make lint` runs it too; this keeps it in the test suite."""

from __future__ import annotations

import tomllib
from pathlib import Path

from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def test_no_service_imports_another_and_the_shared_packages_import_none() -> None:
    # On failure the captured output names each import that breaks the contract, with its line.
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True) == EXIT_STATUS_SUCCESS


def test_every_service_package_is_under_the_contract() -> None:
    contracts = {
        contract["id"]: contract
        for contract in tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    }
    packages = {
        f"services.{path.parent.name}"
        for path in (ROOT / "services").glob("*/__init__.py")
        if path.parent.name != "core"
    }
    assert set(contracts["services-independent"]["modules"]) == packages
    assert set(contracts["shared-imports-no-service"]["forbidden_modules"]) == packages
