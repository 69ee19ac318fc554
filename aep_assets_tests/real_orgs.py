"""Two orgs' data shaped as real ones are, made through the sandbox's public APIs, with their truth planted.

* ``closed_cohort``: a purchase log of customers all acquired in one quarter, over 18 months. Each customer
  buys at a rate of their own (gamma-distributed, as the BG/NBD model of the field assumes), spends around a
  mean of their own (gamma-gamma), and lapses for good at a time of their own (exponential lifetimes). Tenure
  grows by the same amount for everyone between any two cutoffs: the case that made the old drift gate block.
* ``growing_site``: six months of Web SDK events whose traffic grows every week, with a seasonal peak in the
  last month, new visitors arriving all along, and a CRM profile dataset (sparse loyalty points, birth years).
  A latent interest drives page views, product views, cart adds and purchases.

Each comes with its truth per profile: the probability of a purchase in an outcome window after a cutoff and
the expected spend, computed from the planted process, not from the data. Events land in two batches, before
and after ``split_at``, so a test can replace the recent one with a broken copy and put it back.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa

from aep_assets.aep import AEPClient
from aep_assets.pipeline.ingest import ingest_batch

from .org_data import EVENT_CLASS, FIELD_GROUPS, IDENTITY_MAP, PROFILE_CLASS, PROFILE_GROUPS, ecid

PURCHASE = "commerce.purchases"


@dataclass
class RealOrg:
    """A dataset as a user's org holds it, its recent batch, and the truth behind it."""

    dataset: dict
    today: datetime
    split_at: datetime  # the recent batch holds the events at or after this time
    tables: dict[str, pa.Table]  # "old" and "recent" events
    batches: dict[str, str]  # "old" and "recent" batch ids
    truth: pl.DataFrame  # profile_id and the process's parameters
    profiles: dict | None = None  # the CRM dataset, if any
    profile_table: pa.Table | None = None
    profile_batch: str = ""
    extra: dict = field(default_factory=dict)

    def replace_recent(self, client: AEPClient, table: pa.Table) -> str:
        """Revert the recent batch and land ``table`` in its place (what a user's broken feed would do)."""
        client.ingestion.revert_batch(self.batches["recent"])
        self.batches["recent"] = ingest_batch(client, self.dataset["id"], [table], replace=None, timeout_s=120)["id"]
        return self.batches["recent"]

    def restore_recent(self, client: AEPClient) -> None:
        self.replace_recent(client, self.tables["recent"])

    def replace_profiles(self, client: AEPClient, table: pa.Table) -> None:
        client.ingestion.revert_batch(self.profile_batch)
        self.profile_batch = ingest_batch(client, self.profiles["id"], [table], replace=None, timeout_s=120)["id"]

    def restore_profiles(self, client: AEPClient) -> None:
        self.replace_profiles(client, self.profile_table)


def today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _identity_map(ids: np.ndarray, namespace: str) -> pa.Array:
    return pa.array([[(namespace, [{"id": i, "authenticatedState": "authenticated", "primary": True}])]
                     for i in ids], IDENTITY_MAP)


def _event_schema(client: AEPClient, title: str) -> str:
    schema, _ = client.schemas.ensure_schema({
        "title": title, "type": "object", "description": f"{title}: the org's own.",
        "allOf": [{"$ref": EVENT_CLASS}, *({"$ref": g} for g in FIELD_GROUPS)]})
    return schema["$id"]


def events_table(ids: np.ndarray, types: np.ndarray, times: np.ndarray, price: np.ndarray, *, namespace: str,
                 tag: str) -> pa.Table:
    """XDM ExperienceEvent rows: one per event, ``price`` only on purchases (NaN elsewhere)."""
    n = len(ids)
    purchase = types == PURCHASE
    one = pa.array(np.ones(n))

    def measure(mask: np.ndarray) -> pa.StructArray:
        return pa.StructArray.from_arrays([one], names=["value"], mask=pa.array(~mask))

    order = pa.StructArray.from_arrays(
        [pa.array([f"{tag}-o{i}" for i in range(n)]), pa.array(np.where(purchase, price, 0.0)),
         pa.array(["USD"] * n)], names=["purchaseID", "priceTotal", "currencyCode"], mask=pa.array(~purchase))
    commerce = pa.StructArray.from_arrays(
        [order, measure(purchase), measure(types == "commerce.productViews"),
         measure(types == "commerce.productListAdds")], names=["order", "purchases", "productViews", "productListAdds"])
    page = pa.StructArray.from_arrays([pa.array(np.where(purchase, "checkout", "page")),
                                       measure(types == "web.webpagedetails.pageViews")], names=["name", "pageViews"])
    return pa.table({
        "_id": pa.array([f"{tag}-{i}" for i in range(n)]),
        "timestamp": pa.array(times.astype("datetime64[us]"), pa.timestamp("us", "UTC")),
        "eventType": pa.array(types.tolist()),
        "identityMap": _identity_map(ids, namespace),
        "commerce": commerce,
        "web": pa.StructArray.from_arrays([page], names=["webPageDetails"]),
    })


def _land(client: AEPClient, name: str, schema_id: str, table: pa.Table, split_at: datetime
          ) -> tuple[dict, dict[str, pa.Table], dict[str, str]]:
    ds, _ = client.catalog.ensure_dataset(name, schema_id, description="The org's own events.")
    ts = np.asarray(table["timestamp"].to_numpy(zero_copy_only=False), "datetime64[us]")
    recent = ts >= np.datetime64(split_at.replace(tzinfo=None), "us")
    tables = {"old": table.filter(pa.array(~recent)), "recent": table.filter(pa.array(recent))}
    batches = {k: ingest_batch(client, ds["id"], [t], replace=None, timeout_s=180)["id"] for k, t in tables.items()}
    return client.catalog.get_dataset(ds["id"]), tables, batches


def _seconds(days: np.ndarray, start: datetime) -> np.ndarray:
    return np.datetime64(start.replace(tzinfo=None), "us") + (days * 86400e6).astype("timedelta64[us]")


def closed_cohort(client: AEPClient, *, n: int = 5000, seed: int = 11, name: str = "Store purchases") -> RealOrg:
    """A purchase log: everyone acquired in one quarter 18 months ago, then buying until they lapse."""
    rng = np.random.default_rng(seed)
    end = today()
    start = end - timedelta(days=540)
    acquired = rng.uniform(0, 90, n)  # days after start: one quarter
    rate = rng.gamma(1.5, 1 / 45, n)  # purchases per day while active: one every 30 days on average
    lapse = acquired + rng.exponential(420, n)  # the day each customer stops for good
    mean_spend = rng.gamma(4.0, 20.0, n)  # about 80 per order, customer by customer
    ids = np.array(ecid(rng, n))
    owner, day = [np.arange(n)], [acquired]  # the first purchase acquires the customer
    active = np.minimum(lapse, 540.0) - acquired
    counts = rng.poisson(rate * active)
    more = np.repeat(np.arange(n), counts)
    owner.append(more)
    day.append(acquired[more] + rng.uniform(0, 1, more.size) * active[more])
    owner, day = np.concatenate(owner), np.concatenate(day)
    order = np.argsort(day, kind="stable")
    owner, day = owner[order], day[order]
    price = np.round(rng.gamma(8.0, mean_spend[owner] / 8.0), 2)
    table = events_table(ids[owner], np.array([PURCHASE] * owner.size, dtype=object), _seconds(day, start), price,
                         namespace="CRMID", tag=f"po{seed}")
    split_at = end - timedelta(days=90)
    schema_id = _event_schema(client, f"{name} schema")
    dataset, tables, batches = _land(client, name, schema_id, table, split_at)
    truth = pl.DataFrame({"profile_id": ids, "rate": rate, "lapse_day": lapse, "mean_spend": mean_spend})
    return RealOrg(dataset, end, split_at, tables, batches, truth, extra={"start": start})


def cohort_truth(org: RealOrg, cutoff: datetime, horizon_days: int) -> pl.DataFrame:
    """Per customer: the planted probability of a purchase in (cutoff, cutoff + horizon] and the expected spend."""
    start = org.extra["start"]
    at = (cutoff - start).total_seconds() / 86400
    t = org.truth
    alive = np.clip(t["lapse_day"].to_numpy() - at, 0, horizon_days)  # days still buying within the window
    p = 1 - np.exp(-t["rate"].to_numpy() * alive)
    return t.select("profile_id").with_columns(pl.Series("p_purchase", p),
                                               pl.Series("expected_spend", t["rate"] * alive * t["mean_spend"]))


# A growing site: eventType -> (daily rate at interest 0, slope of the log-rate in the interest)
SITE_RATES = {"web.webpagedetails.pageViews": (0.15, 0.5), "commerce.productViews": (0.06, 0.8),
              "commerce.productListAdds": (0.015, 1.1), PURCHASE: (0.005, 1.5)}
SITE_DAYS = 183


def growing_site(client: AEPClient, *, n: int = 16000, seed: int = 21, name: str = "Site Web SDK events") -> RealOrg:
    """Six months of Web SDK events: traffic growing 1.2 % a week, twice the traffic in the last month's peak,
    visitors arriving all along (more of them lately), and a CRM profile dataset for two thirds of them."""
    rng = np.random.default_rng(seed)
    end = today()
    start = end - timedelta(days=SITE_DAYS)
    arrival = SITE_DAYS * np.sqrt(rng.uniform(0, 1, n))  # arrivals grow over time
    interest = rng.normal(size=n)
    churn_day = arrival + rng.exponential(90, n)  # visitors drift away
    ids = np.array(ecid(rng, n))
    grid = np.arange(SITE_DAYS)
    traffic = 1.012 ** (grid / 7) * np.where(grid >= SITE_DAYS - 30, 1.8, 1.0)  # the trend, then the peak
    cum = np.concatenate([[0.0], np.cumsum(traffic)])
    owners, types, days = [], [], []
    stop = np.minimum(churn_day, SITE_DAYS)
    exposure = np.interp(stop, np.arange(SITE_DAYS + 1), cum) - np.interp(arrival, np.arange(SITE_DAYS + 1), cum)
    for event_type, (base, slope) in SITE_RATES.items():
        counts = rng.poisson(base * np.clip(exposure, 0, None) * np.exp(slope * interest))
        owner = np.repeat(np.arange(n), counts)
        # times drawn in proportion to the traffic between arrival and stop (the inverse of the cumulative traffic)
        lo = np.interp(arrival[owner], np.arange(SITE_DAYS + 1), cum)
        hi = np.interp(stop[owner], np.arange(SITE_DAYS + 1), cum)
        day = np.interp(lo + rng.uniform(0, 1, owner.size) * (hi - lo), cum, np.arange(SITE_DAYS + 1))
        owners.append(owner)
        types += [event_type] * owner.size
        days.append(day)
    owner, day = np.concatenate(owners), np.concatenate(days)
    kinds = np.array(types, dtype=object)
    order = np.argsort(day, kind="stable")
    owner, day, kinds = owner[order], day[order], kinds[order]
    spend = np.exp(3.8 + 0.3 * interest)
    price = np.round(rng.gamma(5.0, spend[owner] / 5.0), 2)
    table = events_table(ids[owner], kinds, _seconds(day, start), price, namespace="ECID", tag=f"ws{seed}")
    split_at = end - timedelta(days=30)
    dataset, tables, batches = _land(client, name, _event_schema(client, f"{name} schema"), table, split_at)
    crm = rng.uniform(size=n) < 2 / 3
    profiles, profile_table, profile_batch = _crm(client, f"{name} CRM", ids[crm], interest[crm], rng)
    truth = pl.DataFrame({"profile_id": ids, "interest": interest, "arrival_day": arrival, "churn_day": churn_day,
                          "mean_spend": spend})
    return RealOrg(dataset, end, split_at, tables, batches, truth, profiles, profile_table, profile_batch,
                   extra={"start": start, "cum": cum})


def _crm(client: AEPClient, name: str, ids: np.ndarray, interest: np.ndarray, rng: np.random.Generator
         ) -> tuple[dict, pa.Table, str]:
    schema, _ = client.schemas.ensure_schema({
        "title": f"{name} schema", "type": "object",
        "allOf": [{"$ref": PROFILE_CLASS}, *({"$ref": g} for g in PROFILE_GROUPS)]})
    ds, _ = client.catalog.ensure_dataset(name, schema["$id"], description="The org's CRM profiles.")
    table = profile_records(ids, rng.integers(1950, 2006, len(ids)),
                            np.where(rng.uniform(size=len(ids)) < 0.6, np.round(np.exp(5 + interest), 1), np.nan))
    batch = ingest_batch(client, ds["id"], [table], replace=None, timeout_s=120)["id"]
    return client.catalog.get_dataset(ds["id"]), table, batch


def profile_records(ids: np.ndarray, birth_years: np.ndarray, points: np.ndarray) -> pa.Table:
    """CRM rows: ECID in identityMap, a birth year, and loyalty points (NULL where NaN: a sparse field)."""
    return pa.table({
        "_id": pa.array([f"crm-{i}" for i in range(len(ids))]),
        "identityMap": _identity_map(ids, "ECID"),
        "person": pa.StructArray.from_arrays([pa.array(birth_years.astype(np.int64))], names=["birthYear"]),
        "loyalty": pa.StructArray.from_arrays([pa.array(points, from_pandas=True)], names=["points"]),
    })


def site_truth(org: RealOrg, cutoff: datetime, horizon_days: int) -> pl.DataFrame:
    """Per visitor: the planted probability of a purchase in (cutoff, cutoff + horizon] and the expected spend."""
    at = (cutoff - org.extra["start"]).total_seconds() / 86400
    t, cum = org.truth, org.extra["cum"]
    grid = np.arange(len(cum))
    lo = np.maximum(t["arrival_day"].to_numpy(), at)
    hi = np.minimum(t["churn_day"].to_numpy(), at + horizon_days)
    # the traffic after the data's end continues at its last level
    extended = np.concatenate([cum, cum[-1] + (cum[-1] - cum[-2]) * np.arange(1, horizon_days + 2)])
    grid = np.arange(len(extended))
    exposure = np.clip(np.interp(hi, grid, extended) - np.interp(lo, grid, extended), 0, None)
    base, slope = SITE_RATES[PURCHASE]
    rate = base * np.exp(slope * t["interest"].to_numpy()) * exposure
    return t.select("profile_id").with_columns(pl.Series("p_purchase", 1 - np.exp(-rate)),
                                               pl.Series("expected_spend", rate * t["mean_spend"].to_numpy()))
