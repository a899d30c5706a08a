"""Generates the Python modules for every .proto under proto/parley into the same folders.

Generated code is committed (see docs/decisions.md); `tests/unit/test_proto_drift.py` regenerates into
a temporary folder and fails when the committed files differ. Run through `make proto`.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent


def generate(out_dir: Path) -> list[Path]:
    sources = sorted(PROTO_ROOT.glob("parley/**/*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    # mypy-protobuf's stubs type enums as their own int types and know the gRPC stubs too.
    plugins = Path(sys.executable).parent
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(source.relative_to(PROTO_ROOT)) for source in sources),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for source in sources:
        package = source.parent.relative_to(PROTO_ROOT).parts
        for depth in range(1, len(package) + 1):
            (out_dir.joinpath(*package[:depth]) / "__init__.py").touch()
    return sorted(out_dir.glob("parley/**/*.py")) + sorted(out_dir.glob("parley/**/*.pyi"))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT)
