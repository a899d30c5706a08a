"""charts/parley rendered offline by the real Helm engine (helm-python-sdk: no helm binary, no cluster),
as the list of objects Kubernetes would get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from helm_python import Chart

CHART = Path(__file__).resolve().parents[1] / "charts" / "parley"


def render(
    values: dict[str, Any], *, release: str = "parley", namespace: str = "calls", chart: Path = CHART
) -> list[dict[str, Any]]:
    with Chart.load(chart) as loaded:
        manifests = loaded.render(values=values, name=release, namespace=namespace, is_install=True)
    return [
        document
        for name, text in sorted(manifests.items())
        if name.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if document
    ]
