"""Everything a store answers, for comparing stores and before/after states."""
from __future__ import annotations

from typing import Any

from memory import schema, views
from memory.store import Reader

TABLES = ["records", "equivocations", *schema.TABLE_NAMES.values()]


def snapshot(reader: Reader, with_counters: bool = False) -> dict[str, Any]:
    """Every table and view, fully ordered."""
    names = TABLES + list(views.VIEWS) + (["rejections"] if with_counters else [])
    return {name: reader.query(f"SELECT * FROM {name} ORDER BY ALL").rows for name in names}
