"""The generated protobuf modules in proto/parley are the ones the .proto files produce today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "proto"


def _generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_generated_code_matches_the_protos(tmp_path: Path) -> None:
    fresh = {path.relative_to(tmp_path): path.read_bytes() for path in _generator().generate(tmp_path)}
    committed = {
        path.relative_to(ROOT): path.read_bytes()
        for pattern in ("parley/**/*.py", "parley/**/*.pyi")
        for path in ROOT.glob(pattern)
    }
    assert sorted(committed) == sorted(fresh), "run `make proto` and commit the result"
    stale = [str(name) for name, content in fresh.items() if committed[name] != content]
    assert not stale, f"stale generated code, run `make proto`: {stale}"
