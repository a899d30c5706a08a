"""The settings table of docs/operations.md is the one the settings classes make today (`make docs`), and
names every setting with a default and a meaning."""

from __future__ import annotations

from pathlib import Path

from services.core import settings_doc

OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def test_the_table_in_operations_md_is_current() -> None:
    document = OPERATIONS.read_text()
    assert settings_doc.replace_table(document) == document, "run `make docs` and commit docs/operations.md"


def test_every_setting_has_a_meaning() -> None:
    rows = settings_doc.rows()
    names = [variable for variable, _, _, _ in rows]
    assert "PARLEY_KAFKA__BOOTSTRAP_SERVERS" in names and "PARLEY_OPS__PORT" in names
    assert len(names) == len(set(names))
    assert not [variable for variable, _, _, meaning in rows if not meaning]
