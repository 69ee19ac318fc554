"""The no-leakage proof: recompute a sample of feature rows from raw events strictly before T.

The sample's raw events (all of them, after T too) come out of AEP through Query Service and a
dataset export, each with the engine's verdict on every feature event's condition and the goal (the
``e<i>``/``v<i>``/``goal_event`` columns of ``source_events``). ``reference_features`` then recomputes
the aggregations in Python, independently of the generated SQL, and the label from the goal events in
(T, T+H]. Any difference means the feature table read something it must not have.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from ..aep import AEPClient
from ..ml.feature_set import GOAL_VALUE, ID, LABEL, FeatureSet, reference_features
from ..storage import Storage
from .exports import export_dataset
from .feature_builds import feature_fragments, transient_feature_dataset
from .feature_sql import quote_string
from .naming import Names
from .sources import Sources


@dataclass
class LeakageResult:
    rows_checked: int
    mismatched_rows: int
    mismatches_by_column: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.rows_checked > 0 and self.mismatched_rows == 0


def sample_rows(frame: pl.DataFrame, per_split: int, seed: int) -> pl.DataFrame:
    return pl.concat([part.sample(min(per_split, part.height), seed=seed)
                      for part in frame.partition_by("split")])


def compare(sample: pl.DataFrame, events: pl.DataFrame, fs: FeatureSet) -> LeakageResult:
    """Each sampled row against features recomputed from flagged ``events`` (see reference_features)."""
    columns = [c for c in fs.event_names if c in sample.columns]
    bad_rows = np.zeros(sample.height, bool)
    by_column: dict[str, int] = {}
    examples = []
    for (cutoff,), rows in sample.with_row_index("_row").group_by(["cutoff"], maintain_order=True):
        mine = events.filter(pl.col(ID).is_in(rows[ID].implode()))
        horizon = timedelta(days=int(rows["horizonDays"][0]))
        ref = rows.select("_row", ID).join(reference_features(mine, cutoff, fs), on=ID, how="left")
        goals = mine.filter((pl.col("goal_event") == 1) & (pl.col("timestamp") > cutoff)
                            & (pl.col("timestamp") <= cutoff + horizon))
        reached = rows[ID].is_in(goals[ID].unique().implode())
        want_label = (~reached if fs.goal_kind == "churn" else reached).cast(pl.Int64).to_numpy()
        checks = {c: (rows[c].cast(pl.Float64).to_numpy(), ref[c].cast(pl.Float64).to_numpy(), c in fs.nullable)
                  for c in columns}
        checks[LABEL] = (rows[LABEL].cast(pl.Float64).to_numpy(), want_label.astype(float), False)
        if fs.goal_value:
            sums = goals.group_by(ID).agg(pl.col(GOAL_VALUE).cast(pl.Float64).sum())
            want_value = rows.select(ID).join(sums, on=ID, how="left")[GOAL_VALUE].fill_null(0.0).to_numpy()
            checks[GOAL_VALUE] = (rows[GOAL_VALUE].cast(pl.Float64).to_numpy(), want_value, False)
        for name, (got, want, nullable) in checks.items():
            if not nullable:
                want = np.nan_to_num(want, nan=0.0)
            same = np.isclose(got, want, rtol=1e-9, atol=1e-6, equal_nan=True)
            if not same.all():
                by_column[name] = by_column.get(name, 0) + int((~same).sum())
                bad_rows[rows["_row"].to_numpy()[~same]] = True
                for i in np.nonzero(~same)[0][:2]:
                    if len(examples) < 6:
                        examples.append({ID: rows[ID][int(i)], "cutoff": str(cutoff), "column": name,
                                         "feature_table": _plain(got[i]), "recomputed": _plain(want[i])})
    return LeakageResult(sample.height, int(bad_rows.sum()), by_column, examples)


def _plain(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def check_leakage(client: AEPClient, storage: Storage, frame: pl.DataFrame, fs: FeatureSet, sources: Sources,
                  names: Names, *, per_split: int = 100, seed: int = 0) -> LeakageResult:
    sample = sample_rows(frame, per_split, seed)
    ids = ", ".join(quote_string(str(u)) for u in sorted(sample[ID].unique()))
    with transient_feature_dataset(
            client, name="leakage_sample", owner=names.model, table_prefix=names.table_prefix("leakage_sample"),
            params={"tenant_id": client.schemas.tenant_id(), "user_ids": ids},
            fragments=feature_fragments(fs, sources), input_dataset_ids=sources.event_dataset_ids) as build:
        export = export_dataset(client, storage, build.dataset["id"], flow_name=names.flow("leakage sample export"),
                                path=names.export_path("leakage"))
        if not export.keys:
            raise FileNotFoundError(f"The leakage sample export of {build.table} wrote no files, though every "
                                    "sampled profile has events; check the export flow's run in AEP.")
        events = storage.read_parquet(export.keys)
    return compare(sample, events, fs)
