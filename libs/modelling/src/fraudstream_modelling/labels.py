"""Labels as reported: a transaction may be reported more than once (a fraud confirmed after a
genuine label); the latest report known at a time is its label then."""

from __future__ import annotations

import pandas as pd


def latest_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """One label per transaction: its latest report."""
    return labels.sort_values("label_time", kind="stable").drop_duplicates("transaction_id", keep="last")
