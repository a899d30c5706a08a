"""Import the services from another checkout (a `git archive` of main), for an A/B of in-process benches in
one sitting: `--tree DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def use_tree(tree: Path | None) -> str:
    """Put `tree`'s services and generated protos first on the path (None: this checkout's); the checkout
    whose services are imported."""
    if tree is not None:
        sys.path[:0] = [str(tree.resolve()), str(tree.resolve() / "proto")]
    import services.core

    return str(Path(services.core.__file__).resolve().parents[2])


def arguments() -> argparse.ArgumentParser:
    """What these benches share: the room's size and the checkout to import."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--tree", type=Path)
    return parser
