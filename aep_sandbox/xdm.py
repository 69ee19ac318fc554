"""XDM: the standard classes and field groups the sandbox knows, schema resolution, and records.

The sandbox knows a subset of Adobe's standard library by ``$id``: the XDM ExperienceEvent and XDM
Individual Profile classes, and the IdentityMap, Commerce Details, Web Details, Environment Details,
Direct Marketing Details, Demographic Details, Personal Contact Details and Loyalty Details field
groups, with their real field names and types. ``identityMap`` is a map, as in AEP.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
ADHOC_CLASS = "https://ns.adobe.com/xdm/data/adhoc"

OPEN = {"type": "object", "meta:open": True}
IDENTITY_MAP_PATH = "identityMap"  # the primary identity is the item of identityMap marked primary


def _obj(**props) -> dict:
    return {"type": "object", "properties": props}


S, N, INT, B = {"type": "string"}, {"type": "number"}, {"type": "integer"}, {"type": "boolean"}
DT = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}

def _measure() -> dict:
    """``https://ns.adobe.com/xdm/data/measure``: a count or amount with an optional id."""
    return _obj(id=S, value=N)


def _array(items: dict) -> dict:
    return {"type": "array", "items": items}


def _strings(*names: str) -> dict:
    return {n: S for n in names}


# https://ns.adobe.com/xdm/context/identitymap: namespace code -> identity items
IDENTITY_MAP = {"type": "object", "meta:xdmType": "map",
                "additionalProperties": _array(_obj(id=S, authenticatedState=S, primary=B))}
ADDRESS = _obj(**_strings("street1", "street2", "street3", "street4", "city", "postalCode", "state", "region",
                          "country", "label", "statusReason", "countryCode", "stateProvince", "postOfficeBox",
                          "status"), primary=B, lastVerifiedDate=DATE, dmaID=INT, msaID=INT)
PHONE = _obj(**_strings("number", "extension", "statusReason", "countryCode", "status", "validity"), primary=B)
ORDER = _obj(**_strings("purchaseID", "purchaseOrderNumber", "currencyCode", "orderType"),
             priceTotal=N, taxAmount=N, discountAmount=N, refundTotal=N, createdDate=DT, lastUpdatedDate=DT,
             cancelDate=DT, payments=_array(_obj(transactionID=S, currencyCode=S, paymentAmount=N, paymentType=S)))
COMMERCE_MEASURES = ("purchases", "productViews", "productListAdds", "productListOpens", "productListRemovals",
                     "productListReopens", "productListViews", "checkouts", "cartAbandons", "saveForLaters",
                     "inStorePurchase", "instantPurchase")
PRODUCT_LIST_ITEM = {**_obj(**_strings("SKU", "_id", "product", "name", "productImageUrl", "productAddMethod",
                                       "unitOfMeasureCode", "currencyCode"),
                            quantity=INT, priceTotal=N, discountAmount=N, refundAmount=N,
                            productCategories=_array(_obj(categoryID=S, categoryName=S, categoryPath=S))),
                     "required": ["SKU"]}
DIRECT_MARKETING_MEASURES = ("sends", "opens", "clicks", "bounces", "emailDelivered", "nonDeliverables", "notSent",
                             "unsubscriptions", "userComplaints", "mirrorPages", "offerOpens", "impressions",
                             "excludes", "customActions", "marketingSubscription")

CLASSES: dict[str, dict] = {
    PROFILE_CLASS: {
        "title": "XDM Individual Profile", "meta:altId": "_xdm.context.profile",
        "properties": {"_id": S, "personID": S, "repositoryCreatedBy": S, "repositoryLastModifiedBy": S,
                       "createdByBatchID": S, "modifiedByBatchID": S, "_repo": OPEN},
        "required": [],
    },
    EVENT_CLASS: {
        "title": "XDM ExperienceEvent", "meta:altId": "_xdm.context.experienceevent",
        "properties": {"_id": S, "timestamp": DT, "eventType": S, "eventMergeId": S, "producedBy": S,
                       "identityMap": IDENTITY_MAP, "_repo": OPEN},
        "required": ["_id", "timestamp"],
    },
    ADHOC_CLASS: {"title": "Ad Hoc", "meta:altId": "_xdm.data.adhoc", "properties": {}, "required": []},
}

# Adobe's standard field groups by $id, with their real field names and types (reference/xdm_standard.md,
# from adobe/xdm). Not modelled yet: enums and patterns (AEP checks those only on streaming ingestion
# anyway), the address's auditable and geo-coordinate parts, and the loyalty arrays of cards and rewards.
STANDARD_FIELD_GROUPS: dict[str, dict] = {
    "https://ns.adobe.com/xdm/context/identitymap": {
        "title": "IdentityMap", "intendedToExtend": [], "properties": {"identityMap": IDENTITY_MAP}},
    "https://ns.adobe.com/xdm/context/experienceevent-commerce": {
        "title": "Commerce Details", "intendedToExtend": [EVENT_CLASS],
        "properties": {
            "commerce": _obj(order=ORDER, **{m: _measure() for m in COMMERCE_MEASURES}, promotionID=S,
                             cart=_obj(cartID=S, cartSource=S),
                             shipping=_obj(**_strings("shippingMethod", "trackingURL", "trackingNumber",
                                                      "currencyCode", "shippingDestination"),
                                           shippingAmount=N, shipDate=DT, address=ADDRESS),
                             billing=_obj(address=ADDRESS)),
            "productListItems": _array(PRODUCT_LIST_ITEM)}},
    "https://ns.adobe.com/xdm/context/experienceevent-web": {
        "title": "Web Details", "intendedToExtend": [EVENT_CLASS],
        "properties": {"web": _obj(
            webPageDetails=_obj(**_strings("name", "URL", "siteSection", "viewName", "server"), isErrorPage=B,
                                isHomePage=B, isPreRendered=B, pageViews=_measure()),
            webInteraction=_obj(**_strings("URL", "name", "region", "type"), linkClicks=_measure()),
            webReferrer=_obj(URL=S, type=S))}},
    "https://ns.adobe.com/xdm/context/experienceevent-environment-details": {
        "title": "Environment Details", "intendedToExtend": [EVENT_CLASS],
        "properties": {
            "environment": _obj(
                **_strings("type", "operatingSystem", "operatingSystemVersion", "operatingSystemVendor", "carrier",
                           "domain", "ISP", "viewedScreen", "previousScreen", "connectionType", "proxyType", "ipV4",
                           "ipV6"),
                colorDepth=INT, viewportHeight=INT, viewportWidth=INT, duration=INT,
                browserDetails=_obj(**_strings("name", "vendor", "version", "acceptLanguage", "userAgent"),
                                    cookiesEnabled=B, thirdPartyCookiesEnabled=B, javaScriptEnabled=B,
                                    javaEnabled=B, viewportHeight=INT, viewportWidth=INT)),
            "device": _obj(**_strings("typeID", "typeIDService", "manufacturer", "model", "modelNumber", "type",
                                      "screenOrientation", "locationPermission"),
                           screenHeight=INT, screenWidth=INT, colorDepth=INT, isBackgroundPushEnabled=B,
                           isLocationEnabled=B, isPushOptIn=B),
            "placeContext": _obj(localTime=DT, IPLocalTime=DT, ianaTimezone=S, localTimezoneOffset=INT,
                                 IPLocalTimezoneOffset=INT,
                                 geo=_obj(**_strings("countryCode", "stateProvince", "city", "postalCode"),
                                          dmaID=INT, msaID=INT))}},
    "https://ns.adobe.com/xdm/context/experienceevent-directmarketing": {
        "title": "Direct Marketing Details", "intendedToExtend": [EVENT_CLASS],
        "properties": {"directMarketing": _obj(
            **{m: _measure() for m in DIRECT_MARKETING_MEASURES},
            **_strings("unsubscribeReason", "hashedEmail", "emailVisitorID", "messageID"))}},
    "https://ns.adobe.com/xdm/context/profile-person-details": {
        "title": "Demographic Details", "intendedToExtend": [PROFILE_CLASS, EVENT_CLASS],
        "properties": {"person": _obj(
            name=_obj(**_strings("firstName", "lastName", "middleName", "fullName", "courtesyTitle", "suffix")),
            birthDate=DATE, birthYear=INT,
            **_strings("birthDayAndMonth", "gender", "maritalStatus", "nationality", "type", "taxId"))}},
    "https://ns.adobe.com/xdm/context/profile-personal-details": {
        "title": "Personal Contact Details", "intendedToExtend": [PROFILE_CLASS, EVENT_CLASS],
        "properties": {
            "personalEmail": _obj(address=S, primary=B, label=S, statusReason=S, type=S, status=S),
            **{phone: PHONE for phone in ("mobilePhone", "homePhone", "faxPhone", "shippingAddressPhone",
                                          "billingAddressPhone")},
            **{address: ADDRESS for address in ("homeAddress", "mailingAddress", "shippingAddress",
                                                "billingAddress")}}},
    "https://ns.adobe.com/xdm/mixins/profile/profile-loyalty-details": {
        "title": "Loyalty Details", "intendedToExtend": [PROFILE_CLASS],
        "properties": {"loyalty": _obj(
            **_strings("tier", "nextTier", "program", "status", "upgradeDate"),
            joinDate=DT, tierUpgradeDate=DT, tierExpiryDate=DT, loyaltyID=_array(S),
            **{n: N for n in ("points", "pointsRedeemed", "pointsToNextTier", "adjustedPoints", "expiredPoints",
                              "lifetimePoints", "lifetimePurchases", "promisedPoints", "returnedPoints")},
            pointsExpiration=_array(_obj(pointsExpiring=N, pointsExpirationDate=DT)))}},
}


def merge_properties(into: dict, extra: dict) -> None:
    for key, spec in extra.items():
        if key in into and into[key].get("properties") and spec.get("properties"):
            merged = dict(into[key])
            merged["properties"] = dict(into[key]["properties"])
            merge_properties(merged["properties"], spec["properties"])
            into[key] = merged
        else:
            into[key] = spec


def fieldgroup_properties(fieldgroup: dict) -> dict:
    """All properties a tenant field group defines, across its ``definitions``."""
    props: dict = {}
    for definition in (fieldgroup.get("definitions") or {}).values():
        merge_properties(props, definition.get("properties") or {})
    merge_properties(props, fieldgroup.get("properties") or {})
    return props


def arrow_type(spec: dict) -> pa.DataType | None:
    """The Parquet type of an XDM field, or None for an open object stored as sent."""
    kind = spec.get("type")
    if kind == "object" and spec.get("meta:xdmType") == "map":
        value = arrow_type(spec.get("additionalProperties") or S)
        return pa.map_(pa.string(), value) if value is not None else None
    if kind == "object":
        if spec.get("meta:open") or not spec.get("properties"):
            return None
        fields = []
        for name, child in spec["properties"].items():
            t = arrow_type(child)
            if t is not None:
                fields.append(pa.field(name, t))
        return pa.struct(fields)
    if kind == "array":
        item = arrow_type(spec.get("items") or S)
        return pa.list_(item) if item is not None else None
    if kind == "string":
        if spec.get("format") == "date-time":
            return pa.timestamp("us", tz="UTC")
        if spec.get("format") == "date":
            return pa.date32()
        return pa.string()
    return {"number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}.get(kind, pa.string())


def arrow_schema(properties: dict) -> pa.Schema:
    fields = []
    for name, spec in properties.items():
        t = arrow_type(spec)
        fields.append(pa.field(name, t if t is not None else pa.string()))
    return pa.schema(fields)


def infer_properties(schema: pa.Schema) -> dict:
    """An ad hoc XDM description of an Arrow schema (CTAS output)."""
    return {f.name: _infer(f.type) for f in schema}


def _infer(t: pa.DataType) -> dict:
    if pa.types.is_map(t):
        return {"type": "object", "meta:xdmType": "map", "additionalProperties": _infer(t.item_type)}
    if pa.types.is_struct(t):
        return _obj(**{f.name: _infer(f.type) for f in t})
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"type": "array", "items": _infer(t.value_type)}
    if pa.types.is_timestamp(t):
        return DT
    if pa.types.is_date(t):
        return DATE
    if pa.types.is_boolean(t):
        return B
    if pa.types.is_integer(t):
        return INT
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return N
    return S


class RecordError(ValueError):
    """A record does not fit its XDM schema. ``code`` follows AEP's batch error codes."""

    def __init__(self, code: str, description: str, rows: list[int] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.rows = code, description, rows or []


def validation_contract(registry, dataset: dict) -> tuple[dict, list[str], str | None]:
    """What a dataset's records are validated against, as batch ingestion does: the schema's resolved properties,
    its required fields, and on a profile-enabled dataset the path of the primary identity."""
    schema = registry.get(dataset["schemaRef"]["id"], "schemas")
    props, required = registry.resolve(schema)
    ident = registry.primary_identity(schema["$id"])
    # Profile needs the primary identity on every record; the data lake alone does not.
    profile = any(v.startswith("enabled:true") for v in (dataset.get("tags") or {}).get("unifiedProfile", []))
    ident_path = ((ident["xdm:sourceProperty"] if ident else IDENTITY_MAP_PATH if "identityMap" in props else None)
                  if profile else None)
    return props, required, ident_path


def conform(table: pa.Table, properties: dict, required: list[str], identity_path: str | None) -> pa.Table:
    """Validate ``table`` against XDM ``properties`` and cast it to the schema's Parquet types."""
    columns, names = [], []
    for name in table.column_names:
        if name not in properties:
            raise RecordError("XDM-1020", f"Field '{name}' is not defined in the dataset's schema; "
                                          "add it to a field group of the schema or drop it from the file.")
        col = table.column(name).combine_chunks()
        columns.append(_conform_array(col, properties[name], name))
        names.append(name)
    out = pa.Table.from_arrays(columns, names=names) if names else table
    for name in required:
        if name not in out.column_names:
            raise RecordError("XDM-1050", f"Required field '{name}' is missing from the file.")
        nulls = out.column(name).null_count
        if nulls:
            rows = _null_rows(out.column(name))
            raise RecordError("XDM-1050", f"Required field '{name}' is null in {nulls} records.", rows)
    if identity_path == IDENTITY_MAP_PATH:
        _require_one_primary(out)
    elif identity_path:
        ident = _get_path(out, identity_path)
        if ident is None:
            raise RecordError("IDENTITY-1001", f"Primary identity field '{identity_path}' is missing from the file.")
        if ident.null_count:
            raise RecordError("IDENTITY-1001",
                              f"Primary identity field '{identity_path}' is null in {ident.null_count} records.",
                              _null_rows(ident))
    return out


def _require_one_primary(table: pa.Table) -> None:
    """A profile-enabled dataset without an identity descriptor takes its primary identity from
    ``identityMap``: exactly one item across all namespaces must have ``primary: true``."""
    if "identityMap" not in table.column_names:
        raise RecordError("IDENTITY-1001", "The schema's primary identity comes from identityMap, which is missing "
                                           "from the file; send identityMap with one item marked primary: true.")
    m = table.column("identityMap").combine_chunks()
    if not pa.types.is_map(m.type):
        raise RecordError("IDENTITY-1001", f"identityMap must be a map of namespaces, not {m.type}.")
    # Offsets rather than list kernels: they work the same on maps and on sliced arrays.
    offsets = m.offsets.to_numpy()
    entry_row = np.repeat(np.arange(len(m)), np.diff(offsets))
    items = m.items[offsets[0]:offsets[-1]]
    item_offsets = items.offsets.to_numpy()
    item_entry = np.repeat(np.arange(len(items)), np.diff(item_offsets))
    flat = items.values[item_offsets[0]:item_offsets[-1]]
    has_flag = "primary" in [f.name for f in flat.type]
    primary = (pc.fill_null(pc.struct_field(flat, "primary"), False).to_numpy(zero_copy_only=False) if has_flag
               else np.zeros(len(flat), bool))
    counts = np.bincount(entry_row[item_entry], weights=primary.astype(float), minlength=len(m))
    bad = np.nonzero(counts != 1)[0]
    if bad.size:
        raise RecordError("IDENTITY-1001", f"{bad.size} records do not have exactly one primary identity in "
                                           f"identityMap (they have {sorted(set(counts[bad].astype(int)))[:3]}); "
                                           "mark exactly one item primary: true.", [int(i) for i in bad[:10]])


def conforms_as_stored(parquet: pq.ParquetFile, properties: dict, required: list[str],
                       identity_path: str | None) -> bool:
    """Whether a Parquet file already has the schema's types and no nulls where the schema forbids them,
    judged from its footer alone (types, and the null counts of its column statistics), so that its
    bytes can be kept as they are. False means "decode and check every value" (``conform``)."""
    plain = pa.schema([f.with_type(_without_dictionaries(f.type)) for f in parquet.schema_arrow])
    try:
        if conform(plain.empty_table(), properties, [], None).schema != plain:
            return False
    except RecordError:
        return False
    leaves = [*(r for r in required), *([identity_path.strip("/").replace("/", ".")] if identity_path else [])]
    meta = parquet.metadata
    paths = {meta.row_group(0).column(j).path_in_schema: j for j in range(meta.num_columns)} if meta.num_row_groups \
        else {}
    for leaf in leaves:
        if leaf not in paths:
            return False
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(paths[leaf]).statistics
            if stats is None or not stats.has_null_count or stats.null_count:
                return False
    return True


def _without_dictionaries(t: pa.DataType) -> pa.DataType:
    """Parquet stores a dictionary-encoded column as its plain values: the logical type is the value type."""
    if pa.types.is_dictionary(t):
        return _without_dictionaries(t.value_type)
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_without_dictionaries(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_list(t):
        return pa.list_(_without_dictionaries(t.value_type))
    return t


def _null_rows(arr) -> list[int]:
    mask = pc.is_null(arr).to_numpy(zero_copy_only=False)
    return [int(i) for i in mask.nonzero()[0][:10]]


def _get_path(table: pa.Table, dotted: str):
    parts = dotted.strip("/").replace("/", ".").split(".")
    if parts[0] not in table.column_names:
        return None
    arr = table.column(parts[0]).combine_chunks()
    for p in parts[1:]:
        if not pa.types.is_struct(arr.type) or arr.type.get_field_index(p) < 0:
            return None
        arr = pc.struct_field(arr, p)
    return arr


def _struct_to_map(arr: pa.StructArray, path: str) -> pa.MapArray:
    """A JSON object read as a struct (identityMap from JSON records) as the map XDM declares: one entry
    per field that is present."""
    kinds = {arr.type.field(i).type for i in range(arr.type.num_fields)}
    if len(kinds) > 1:
        raise RecordError("TypeCompatibilityException",
                          f"Field '{path}' is a map, but its values have different shapes "
                          f"({sorted(map(str, kinds))}); give every key the same.")
    value_type = kinds.pop() if kinds else pa.null()
    rows = [None if row is None else [(k, v) for k, v in row.items() if v is not None] for row in arr.to_pylist()]
    return pa.array(rows, pa.map_(pa.string(), value_type))


def _conform_array(arr: pa.Array, spec: dict, path: str) -> pa.Array:
    target = arrow_type(spec)
    if target is None:
        return arr
    if pa.types.is_struct(target):
        if pa.types.is_null(arr.type):
            return pa.nulls(len(arr), target)
        if not pa.types.is_struct(arr.type):
            raise RecordError("XDM-1020", f"Field '{path}' must be an object but the file has {arr.type}.")
        children, child_names = [], []
        for i in range(arr.type.num_fields):
            field = arr.type.field(i)
            sub = (spec.get("properties") or {}).get(field.name)
            if sub is None:
                raise RecordError("XDM-1020", f"Field '{path}.{field.name}' is not defined in the dataset's "
                                              "schema; add it to a field group of the schema or drop it.")
            children.append(_conform_array(arr.field(i), sub, f"{path}.{field.name}"))
            child_names.append(field.name)
        return pa.StructArray.from_arrays(children, names=child_names, mask=pc.is_null(arr))
    if arr.type == target:
        return arr
    if pa.types.is_list(target) and (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        items = _conform_array(arr.values, spec.get("items") or S, f"{path}[]")
        return pa.ListArray.from_arrays(arr.offsets, items, mask=pc.is_null(arr))
    if pa.types.is_map(target) and pa.types.is_struct(arr.type):
        arr = _struct_to_map(arr, path)
    if pa.types.is_map(target) and pa.types.is_map(arr.type):
        items = _conform_array(arr.items, spec.get("additionalProperties") or S, f"{path}.<key>")
        return pa.MapArray.from_arrays(arr.offsets, arr.keys, items, mask=pc.is_null(arr))
    try:
        if pa.types.is_timestamp(target) and pa.types.is_integer(arr.type):
            return pc.cast(pc.multiply(arr, 1000), pa.timestamp("us")).cast(target)  # epoch ms
        if pa.types.is_timestamp(target) and pa.types.is_timestamp(arr.type) and arr.type.tz is None:
            return pc.assume_timezone(arr, "UTC").cast(target)
        if pa.types.is_boolean(target) != pa.types.is_boolean(arr.type) and not pa.types.is_null(arr.type):
            raise pa.ArrowInvalid("booleans are never coerced")
        return pc.cast(arr, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise RecordError("TypeCompatibilityException",
                          f"Field '{path}' expects {spec.get('format') or spec.get('type')} but the file has "
                          f"{arr.type} values that do not convert ({str(exc).splitlines()[0]}).") from None
