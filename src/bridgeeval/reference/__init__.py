"""The paper's published tables (Collell & Moens 2018) as package data: Table 1 (mNNO of trained
maps) and Table 2 (Spearman correlations of untrained maps), each CSV's comment lines saying where
its numbers come from."""

from __future__ import annotations

import csv
from importlib import resources


def paper_rows(name: str) -> list[dict[str, str]]:
    """The rows of ``paper_table1`` or ``paper_table2`` (comment lines skipped)."""
    text = resources.files(__name__).joinpath(f"{name}.csv").read_text()
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
