"""The Grafana dashboard (charts/parley/dashboards/parley.json) asks only for metrics the services define
(services/core/metrics.py and the services' own): a renamed metric breaks this test, not a panel in
production."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "parley" / "dashboards" / "parley.json"
# prometheus-client adds these to what the code names.
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def defined_names() -> set[str]:
    source = "\n".join(path.read_text() for path in (ROOT / "services").rglob("*.py"))
    return set(re.findall(r'"(parley_[a-z_]+)"', source))


def test_every_dashboard_query_names_a_defined_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bparley_[a-z_]+", target["expr"])
    }
    defined = defined_names()
    assert queried
    for name in queried:
        base = next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)
        assert name in defined or base in defined, f"{name} is not a metric the services define"
