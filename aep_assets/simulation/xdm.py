"""Simulated frames as XDM records (Arrow tables ready to write as Parquet batch files).

Events carry ``_{tenant}.userid`` (the ECID, primary identity) and, as in the notebooks, a
``directMarketing`` object for email events and a ``web`` object for every other type.
Timestamps are UTC with a timezone, unlike the notebooks' naive local times. Repeated strings are
dictionary-encoded, so a million events cost megabytes, not gigabytes.
"""

import numpy as np
import polars as pl
import pyarrow as pa

from .taxonomy import CODE, NAMES

PAGES = ["home", "pricing", "product", "blog", "support", "subscribe", "account", "search"]
REFERRERS = ["internal", "external", "search_engine", "email", "social", "typed_bookmarked"]
LINK_CLICK_TYPES = ["advertising.clicks", "commerce.purchases", "web.webinteraction.linkClicks",
                    "web.formFilledOut", "decisioning.propositionInteract", "decisioning.propositionDismiss"]
SITE = "https://www.example.com/"


def _flat(a) -> pa.Array:
    """One contiguous Arrow array: struct children cannot be chunked."""
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _arr(series: pl.Series) -> pa.Array:
    return _flat(series.to_arrow())


def _struct(children: list, names: list[str], mask: np.ndarray | None = None) -> pa.StructArray:
    return pa.StructArray.from_arrays([_flat(c) for c in children], names=names,
                                      mask=None if mask is None else pa.array(mask))


def _dict(codes: np.ndarray, values: list[str] | pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values))


def _value(flag: np.ndarray, ones: pa.Array) -> pa.StructArray:
    """``{"value": 1.0}`` where ``flag`` holds, null elsewhere; ``ones`` (one per row) is shared by every such
    field of the table, as Arrow arrays may share buffers."""
    return _struct([ones], ["value"], ~flag)


def _web(codes: np.ndarray, rng: np.random.Generator, is_web: np.ndarray, ones: pa.Array) -> pa.StructArray:
    n = codes.size
    page = rng.integers(0, len(PAGES), size=n)
    page[codes == CODE["web.formFilledOut"]] = PAGES.index("subscribe")
    link = np.isin(codes, [CODE[t] for t in LINK_CLICK_TYPES])
    urls = [SITE + p for p in PAGES]
    details = _struct([_value(np.ones(n, bool), ones), _dict(page, urls), _dict(page, PAGES),
                       _dict(np.zeros(n, np.int32), ["www.example.com"]), pa.array(np.zeros(n, bool))],
                      ["pageViews", "URL", "name", "server", "isErrorPage"])
    interaction = _struct([_value(link, ones), _dict(page, urls), _dict(page, PAGES),
                           _dict(link.astype(np.int32), ["exit", "other"])],
                          ["linkClicks", "URL", "name", "type"])
    referrer = _struct([_dict(np.zeros(n, np.int32), [SITE]),
                        _dict(rng.integers(0, len(REFERRERS), size=n), REFERRERS)], ["URL", "type"])
    return _struct([details, interaction, referrer], ["webPageDetails", "webInteraction", "webReferrer"], ~is_web)


def _direct_marketing(codes: np.ndarray, positions: np.ndarray, emails: pa.Array,
                      is_email: np.ndarray, ones: pa.Array) -> pa.StructArray:
    sent = codes == CODE["directMarketing.emailSent"]
    opened = codes == CODE["directMarketing.emailOpened"]
    clicked = codes == CODE["directMarketing.emailClicked"]
    return _struct([_value(sent, ones), _value(sent, ones), _value(opened, ones), _value(opened | clicked, ones),
                    _value(clicked, ones), _dict(positions, emails)],
                   ["emailDelivered", "sends", "opens", "offerOpens", "clicks", "emailVisitorID"], ~is_email)


def _positions(profile_index: np.ndarray, profiles: pl.DataFrame) -> np.ndarray:
    """Row of ``profiles`` for each event's profile_index."""
    order = np.argsort(profiles["profile_index"].to_numpy())
    sorted_ids = profiles["profile_index"].to_numpy()[order]
    found = np.searchsorted(sorted_ids, profile_index)
    if profile_index.size and (found.max() >= sorted_ids.size or (sorted_ids[found] != profile_index).any()):
        raise ValueError("events reference profiles that are not in the profiles frame")
    return order[found]


def events_to_xdm(events: pl.DataFrame, profiles: pl.DataFrame, tenant: str, seed: int,
                  first_event_number: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed + 1)
    codes = events["event_type"].cast(pl.Enum(NAMES)).to_physical().to_numpy()
    # The identities' dictionaries hold only this slice's profiles, not every profile of the simulation.
    used, positions = np.unique(_positions(events["profile_index"].to_numpy(), profiles), return_inverse=True)
    profiles = profiles[used]
    is_email = np.isin(codes, [CODE[n] for n in NAMES if n.startswith("directMarketing")])
    numbers = pl.int_range(first_event_number, first_event_number + events.height, eager=True).cast(pl.Utf8)
    ones = pa.array(np.ones(events.height))
    return pa.table({
        "_id": _arr(f"ev-{seed}-" + numbers).cast(pa.string()),
        "timestamp": _flat(events["timestamp"].to_arrow()),
        "eventType": _dict(codes, list(NAMES)),
        "producedBy": _dict(np.zeros(events.height, np.int32), ["aep-assets-simulation"]),
        f"_{tenant}": _struct([_dict(positions, _arr(profiles["userid"]))], ["userid"]),
        "web": _web(codes, rng, ~is_email, ones),
        "directMarketing": _direct_marketing(codes, positions, _arr(profiles["email"]), is_email, ones),
    })


def profiles_to_xdm(profiles: pl.DataFrame, tenant: str) -> pa.Table:
    p = profiles
    return pa.table({
        "_id": _arr("profile-" + p["profile_index"].cast(pl.Utf8)),
        "personID": _arr(p["userid"]),
        f"_{tenant}": _struct([_arr(p["userid"])], ["userid"]),
        "person": _struct([_arr(p["gender"]), _arr(p["birth_year"].cast(pl.Int64))], ["gender", "birthYear"]),
        "homeAddress": _struct([_arr(p["state"]), pa.array(np.full(p.height, "US"))], ["state", "countryCode"]),
        "personalEmail": _struct([_arr(p["email"])], ["address"]),
        "loyalty": _struct([_arr(p["loyalty_tier"]), _arr(p["loyalty_points"].cast(pl.Float64)),
                            _arr(p["loyalty_join_date"])], ["tier", "points", "joinDate"]),
    })
