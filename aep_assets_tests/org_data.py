"""An org's own Web SDK data, made in a test through the sandbox's public APIs as a user's org would hold it.

A schema composed by ``$ref`` from Adobe's standard ExperienceEvent class and the Commerce, Web and
Environment field groups; a dataset that aep_assets did not create (no ownership tag); and events
with the ECID as the primary identity in ``identityMap``, standard ``eventType`` values and commerce
fields. Each profile has a latent propensity that drives both its activity and its purchases, so a
model has something to learn. Customers arrive over the whole period, so tenure and lifetime counts
are spread as in a real org rather than all starting on one day.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from aep_assets.aep import AEPClient
from aep_assets.pipeline.ingest import ingest_batch

EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
FIELD_GROUPS = ("https://ns.adobe.com/xdm/context/experienceevent-commerce",
                "https://ns.adobe.com/xdm/context/experienceevent-web",
                "https://ns.adobe.com/xdm/context/experienceevent-environment-details")
DAYS = 400
# eventType -> daily rate at propensity 0 and its log-rate slope in the propensity
RATES = {"web.webpagedetails.pageViews": (0.08, 0.6), "commerce.productViews": (0.04, 0.8),
         "commerce.productListAdds": (0.012, 1.0), "commerce.purchases": (0.008, 1.4)}
IDENTITY_ITEM = pa.struct([("id", pa.string()), ("authenticatedState", pa.string()), ("primary", pa.bool_())])
IDENTITY_MAP = pa.map_(pa.string(), pa.list_(IDENTITY_ITEM))


@dataclass(frozen=True)
class OrgData:
    dataset: dict
    schema_id: str
    today: datetime
    batch_ids: list[str]
    ecids: list[str]
    events: int


def today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def ecid(rng: np.random.Generator, n: int) -> list[str]:
    """ECIDs as AEP requires them: 38 digits."""
    digits = rng.integers(0, 10, size=(n, 38))
    digits[:, 0] = rng.integers(1, 10, size=n)
    return ["".join(map(str, row)) for row in digits]


def events_table(n_profiles: int, seed: int, end: datetime) -> tuple[pa.Table, list[str]]:
    rng = np.random.default_rng(seed)
    ids = ecid(rng, n_profiles)
    latent = rng.normal(size=n_profiles)
    joined = rng.uniform(0, DAYS, size=n_profiles)  # customers arrive over time, as in a real org
    active_days = DAYS - joined
    rows_profile, rows_type, rows_time = [], [], []
    for event_type, (rate, slope) in RATES.items():
        counts = rng.poisson(rate * active_days * np.exp(slope * latent))
        owner = np.repeat(np.arange(n_profiles), counts)
        rows_profile.append(owner)
        rows_type += [event_type] * owner.size
        rows_time.append((joined[owner] + rng.uniform(0, 1, size=owner.size) * active_days[owner]) * 86400)
    profile = np.concatenate(rows_profile)
    seconds = np.concatenate(rows_time)
    order = np.argsort(seconds, kind="stable")
    profile, seconds = profile[order], seconds[order]
    types = np.array(rows_type, dtype=object)[order]
    n = profile.size
    start = end - timedelta(days=DAYS)
    purchase = types == "commerce.purchases"
    product = purchase | (types == "commerce.productViews") | (types == "commerce.productListAdds")
    price = np.round(rng.gamma(2.0, 40.0, size=n), 2)
    one = pa.array(np.ones(n))

    def measure(mask: np.ndarray) -> pa.StructArray:
        return pa.StructArray.from_arrays([one], names=["value"], mask=pa.array(~mask))

    identity = pa.array([[("ECID", [{"id": ids[p], "authenticatedState": "ambiguous", "primary": True}])]
                         for p in profile], IDENTITY_MAP)
    order_struct = pa.StructArray.from_arrays(
        [pa.array([f"o{i}" for i in range(n)]), pa.array(price), pa.array(["USD"] * n)],
        names=["purchaseID", "priceTotal", "currencyCode"], mask=pa.array(~purchase))
    commerce = pa.StructArray.from_arrays(
        [order_struct, measure(purchase), measure(types == "commerce.productViews"),
         measure(types == "commerce.productListAdds")],
        names=["order", "purchases", "productViews", "productListAdds"])
    items = pa.array([[{"SKU": f"SKU-{rng.integers(100)}", "priceTotal": float(price[i]), "quantity": 1}]
                      if product[i] else None for i in range(n)],
                     pa.list_(pa.struct([("SKU", pa.string()), ("priceTotal", pa.float64()),
                                         ("quantity", pa.int64())])))
    page = pa.StructArray.from_arrays([pa.array(np.where(product, "product", "home")), measure(~product)],
                                      names=["name", "pageViews"])
    table = pa.table({
        "_id": pa.array([f"evt-{seed}-{i}" for i in range(n)]),
        "timestamp": pa.array([start + timedelta(seconds=float(s)) for s in seconds], pa.timestamp("us", "UTC")),
        "eventType": pa.array(types.tolist()),
        "identityMap": identity,
        "commerce": commerce,
        "productListItems": items,
        "web": pa.StructArray.from_arrays([page], names=["webPageDetails"]),
        "environment": pa.StructArray.from_arrays([pa.array(["browser"] * n)], names=["type"]),
    })
    return table, ids


def create_org_dataset(client: AEPClient, *, name: str = "Web SDK events", n_profiles: int = 2500,
                       seed: int = 3) -> OrgData:
    """The org's schema, dataset and two batches of events, as the user's own tools would have made them."""
    schema, _ = client.schemas.ensure_schema({
        "title": f"{name} schema", "type": "object", "description": "Web SDK events of the org.",
        "allOf": [{"$ref": EVENT_CLASS}, *({"$ref": g} for g in FIELD_GROUPS)]})
    ds, _ = client.catalog.ensure_dataset(name, schema["$id"], description="The org's Web SDK events.")
    end = today()
    table, ids = events_table(n_profiles, seed, end)
    half = table.num_rows // 2
    batches = [ingest_batch(client, ds["id"], [part], replace=None, timeout_s=120)["id"]
               for part in (table.slice(0, half), table.slice(half))]
    return OrgData(client.catalog.get_dataset(ds["id"]), schema["$id"], end, batches, ids, table.num_rows)


PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
PROFILE_GROUPS = ("https://ns.adobe.com/xdm/context/identitymap",
                  "https://ns.adobe.com/xdm/context/profile-person-details",
                  "https://ns.adobe.com/xdm/mixins/profile/profile-loyalty-details")
TIERS = ("bronze", "silver", "gold")


def create_profile_dataset(client: AEPClient, ecids: list[str], *, name: str = "CRM profiles", seed: int = 4,
                           repeated: int = 200) -> dict:
    """The org's profile records, identity in identityMap, with ``repeated`` identities sent twice (an older
    and a newer record), as profile datasets with history hold them."""
    rng = np.random.default_rng(seed)
    schema, _ = client.schemas.ensure_schema({
        "title": f"{name} schema", "type": "object",
        "allOf": [{"$ref": PROFILE_CLASS}, *({"$ref": g} for g in PROFILE_GROUPS)]})
    ds, _ = client.catalog.ensure_dataset(name, schema["$id"], description="The org's CRM profiles.")
    ids = ecids + ecids[:repeated]
    n = len(ids)
    table = pa.table({
        "_id": pa.array([f"crm-{i}" for i in range(n)]),
        "identityMap": pa.array([[("ECID", [{"id": e, "authenticatedState": "authenticated", "primary": True}])]
                                 for e in ids], IDENTITY_MAP),
        "person": pa.StructArray.from_arrays([pa.array(rng.integers(1950, 2005, size=n))], names=["birthYear"]),
        "loyalty": pa.StructArray.from_arrays(
            [pa.array(rng.choice(TIERS, size=n)), pa.array(np.round(rng.gamma(2.0, 500.0, size=n), 1))],
            names=["tier", "points"]),
    })
    ingest_batch(client, ds["id"], [table], replace=None, timeout_s=120)
    return client.catalog.get_dataset(ds["id"])


def page_views(ecids: list[str], when: datetime, tag: str = "late") -> pa.Table:
    """A few page views of known profiles at ``when``: new data landing, with no goal event in it."""
    return pa.table({
        "_id": pa.array([f"{tag}-{i}" for i in range(len(ecids))]),
        "timestamp": pa.array([when] * len(ecids), pa.timestamp("us", "UTC")),
        "eventType": pa.array(["web.webpagedetails.pageViews"] * len(ecids)),
        "identityMap": pa.array([[("ECID", [{"id": e, "authenticatedState": "ambiguous", "primary": True}])]
                                 for e in ecids], IDENTITY_MAP),
    })
