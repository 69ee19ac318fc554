"""Schema Registry (``/data/foundation/schemaregistry``): field groups, schemas, descriptors, union tags.

reference/aep_api.md §3. Not modelled yet: PUT/DELETE of schemas and field groups, classes of
the tenant, the ``-notext``/``-deprecatefield`` Accept variants.
"""

import copy
import secrets
from urllib.parse import unquote

import jsonpointer

from . import errors, filters, patching
from .http import Call, Router
from .store import Scope, now_ms
from .xdm import CLASSES, STANDARD_FIELD_GROUPS, fieldgroup_properties, merge_properties

BASE = "/data/foundation/schemaregistry"
XDM_KIND, DESCRIPTOR_KIND = "xdm", "descriptor"


class SchemaRegistryBackend:
    def __init__(self, scope: Scope, tenant: str) -> None:
        self.scope, self.tenant = scope, tenant

    # ids -----------------------------------------------------------------------------------
    def _new_ids(self, kind: str) -> tuple[str, str]:
        hexid = secrets.token_hex(16)
        return (f"https://ns.adobe.com/{self.tenant}/{kind}/{hexid}", f"_{self.tenant}.{kind}.{hexid}")

    def _canonical(self, ref: str) -> str:
        ref = unquote(ref).rstrip("/")
        if ref.startswith(f"_{self.tenant}."):
            _, kind, hexid = ref.split(".", 2)
            return f"https://ns.adobe.com/{self.tenant}/{kind}/{hexid}"
        return ref

    def get(self, ref: str, kind: str | None = None) -> dict:
        res = self.scope.get(XDM_KIND, self._canonical(ref))
        if res is None or (kind and res["meta:resourceType"] != kind):
            raise errors.XdmNotFound(f"No {kind or 'resource'} with id {ref!r} exists in this sandbox.")
        return res

    # field groups --------------------------------------------------------------------------
    def _check_title(self, title: str | None) -> None:
        if not title:
            raise errors.SandboxError("'title' is required.")
        if self.scope.list(XDM_KIND, name=title):
            raise errors.TitleNotUnique(f"Title '{title}' is already used by another resource of this "
                                        "sandbox; titles are unique across schemas and field groups.")

    def create_fieldgroup(self, body: dict) -> dict:
        self._check_title(body.get("title"))
        if not body.get("meta:intendedToExtend"):
            raise errors.SandboxError("'meta:intendedToExtend' must list the class $id the field group extends.")
        for name in fieldgroup_properties(body):
            if name != f"_{self.tenant}" and name not in _standard_names(body["meta:intendedToExtend"]):
                raise errors.FieldOutsideTenant(
                    f"Custom field '{name}' must sit under the tenant namespace '_{self.tenant}'.")
        rid, alt = self._new_ids("mixins")
        res = {**body, "$id": rid, "meta:altId": alt, "meta:resourceType": "mixins",
               "meta:containerId": "tenant", "version": "1.0", "type": "object",
               "meta:tenantNamespace": f"_{self.tenant}", **_registry_meta()}
        return self.scope.put(XDM_KIND, rid, res, name=res["title"])

    def patch_fieldgroup(self, ref: str, ops: list[dict]) -> dict:
        """JSON Patch ``add`` operations only: fields can be added to a field group in use, never
        removed or retyped (AEP allows only additive changes once a schema is enabled for Profile)."""
        fg = patching.apply(self.get(ref, "mixins"), ops, allow=_additive, error=errors.SandboxError)
        return self._bump(fg)

    def _bump(self, resource: dict) -> dict:
        """A changed resource gets its next minor version and a new modification time."""
        major, minor = resource["version"].split(".")
        resource["version"] = f"{major}.{int(minor) + 1}"
        resource["meta:registryMetadata"]["repo:lastModifiedDate"] = now_ms()
        return self.scope.put(XDM_KIND, resource["$id"], resource, name=resource["title"])

    # schemas -------------------------------------------------------------------------------
    def create_schema(self, body: dict) -> dict:
        self._check_title(body.get("title"))
        refs = [part.get("$ref") for part in body.get("allOf") or [] if part.get("$ref")]
        classes = [r for r in refs if r in CLASSES]
        if len(classes) != 1:
            raise errors.SandboxError("'allOf' must reference exactly one class, e.g. "
                                      "https://ns.adobe.com/xdm/context/profile.")
        for ref in refs:
            if ref not in CLASSES:
                self._fieldgroup_props(ref)
        rid, alt = self._new_ids("schemas")
        res = {**body, "$id": rid, "meta:altId": alt, "meta:resourceType": "schemas",
               "meta:containerId": "tenant", "meta:class": classes[0], "meta:extends": refs,
               "version": "1.0", "type": "object", "meta:immutableTags": [],
               "meta:tenantNamespace": f"_{self.tenant}", **_registry_meta()}
        return self.scope.put(XDM_KIND, rid, res, name=res["title"])

    def create_adhoc_schema(self, title: str, properties: dict) -> dict:
        rid, alt = self._new_ids("schemas")
        res = {"title": title, "$id": rid, "meta:altId": alt, "meta:resourceType": "schemas",
               "meta:containerId": "tenant", "meta:class": "https://ns.adobe.com/xdm/data/adhoc",
               "meta:extends": [], "allOf": [], "version": "1.0", "type": "object",
               "meta:immutableTags": [], "meta:adhocProperties": properties, **_registry_meta()}
        return self.scope.put(XDM_KIND, rid, res, name=title)

    def _fieldgroup_props(self, ref: str) -> dict:
        if ref in STANDARD_FIELD_GROUPS:
            return STANDARD_FIELD_GROUPS[ref]["properties"]
        return fieldgroup_properties(self.get(ref, "mixins"))

    def resolve(self, schema: dict) -> tuple[dict, list[str]]:
        """The schema's full property tree (``xed-full``) and its required top-level fields."""
        cls = CLASSES[schema["meta:class"]]
        props = copy.deepcopy(cls["properties"])
        for ref in schema.get("meta:extends") or []:
            if ref not in CLASSES:
                merge_properties(props, copy.deepcopy(self._fieldgroup_props(ref)))
        merge_properties(props, schema.get("meta:adhocProperties") or {})
        return props, list(cls["required"])

    def patch_schema(self, ref: str, ops: list[dict]) -> dict:
        """JSON Patch on a schema: new field groups (``/allOf/-`` or ``/meta:extends/-``), the ``union`` tag
        (``/meta:immutableTags``, which can only grow) and its own top-level fields."""
        before = self.get(ref, "schemas")
        schema = patching.apply(before, ops, allow=_schema_patchable, error=errors.SandboxError)
        schema["meta:immutableTags"] = sorted(set(before.get("meta:immutableTags") or [])
                                              | set(schema.get("meta:immutableTags") or []))
        refs = [part["$ref"] for part in schema.get("allOf") or [] if isinstance(part, dict) and part.get("$ref")]
        for fg in [*refs, *schema["meta:extends"]]:
            if fg not in CLASSES and fg not in before["meta:extends"]:
                self._fieldgroup_props(fg)  # 404 for a field group this sandbox does not have
        schema["meta:extends"] = list(dict.fromkeys([*before["meta:extends"], *schema["meta:extends"], *refs]))
        if "union" in schema["meta:immutableTags"] and "union" not in (before.get("meta:immutableTags") or []) \
                and self.primary_identity(schema["$id"]) is None and "identityMap" not in self.resolve(schema)[0]:
            raise errors.UnionWithoutIdentity(
                "To enable a schema for Profile it needs a primary identity descriptor or an "
                "identityMap; create an xdm:descriptorIdentity with xdm:isPrimary=true first.")
        return self._bump(schema)

    # descriptors ---------------------------------------------------------------------------
    def create_descriptor(self, body: dict) -> dict:
        if body.get("@type") != "xdm:descriptorIdentity":
            raise errors.DescriptorInvalid(f"Descriptor type {body.get('@type')!r} is not supported; "
                                           "this sandbox models xdm:descriptorIdentity.")
        schema = self.get(body.get("xdm:sourceSchema") or "", "schemas")
        source = body.get("xdm:sourceProperty") or ""
        props, _ = self.resolve(schema)
        if not source.startswith("/") or not has_path(props, source):
            raise errors.DescriptorInvalid(f"xdm:sourceProperty {source!r} is not a field of schema "
                                           f"'{schema['title']}'; use a path like /_{self.tenant}/userid.")
        if body.get("xdm:isPrimary") and self.primary_identity(schema["$id"]) is not None:
            raise errors.DescriptorInvalid(f"Schema '{schema['title']}' already has a primary identity.")
        res = {**body, "@id": secrets.token_hex(20), "meta:containerId": "tenant", "version": "1",
               "created": now_ms()}
        return self.scope.put(DESCRIPTOR_KIND, res["@id"], res, name=schema["$id"])

    def descriptor(self, descriptor_id: str) -> dict:
        d = self.scope.get(DESCRIPTOR_KIND, descriptor_id)
        if d is None:
            raise errors.XdmNotFound(f"No descriptor with id {descriptor_id!r}.")
        return d

    def descriptors(self, schema_id: str | None = None) -> list[dict]:
        return self.scope.list(DESCRIPTOR_KIND, name=schema_id)

    def primary_identity(self, schema_id: str) -> dict | None:
        for d in self.descriptors(schema_id):
            if d.get("@type") == "xdm:descriptorIdentity" and d.get("xdm:isPrimary"):
                return d
        return None

    def list(self, kind: str) -> list[dict]:
        return [r for r in self.scope.list(XDM_KIND) if r["meta:resourceType"] == kind]


# What the registry keeps for itself: a PATCH cannot set these.
SYSTEM_FIELDS = frozenset({"$id", "meta:altId", "meta:resourceType", "meta:containerId", "meta:class", "version",
                           "meta:registryMetadata", "meta:tenantNamespace", "type"})


def _additive(operation: patching.Operation, fieldgroup: dict) -> None:
    where = "/" + "/".join(operation.path)
    if operation.op != "add":
        raise errors.SandboxError(f"Patch operation {operation.op!r} on {where} is not supported on field groups; "
                                  "only additive 'add' operations are.")
    if operation.path and operation.path[-1] != "-" and \
            jsonpointer.JsonPointer.from_parts(operation.path).resolve(fieldgroup, None) is not None:
        raise errors.SandboxError(f"Field {where} already exists in the field group; existing fields cannot be "
                                  "changed, only new ones added.")


def _schema_patchable(operation: patching.Operation, schema: dict) -> None:
    path = operation.path
    if operation.op == "add" and path in (["allOf", "-"], ["meta:extends", "-"]):
        return
    if operation.op in ("add", "replace") and len(path) == 1 and path[0] not in SYSTEM_FIELDS | {"meta:extends"}:
        return
    raise errors.SandboxError(f"Patch operation {operation.op!r} on /{'/'.join(path)} is not supported on schemas: "
                              "add field groups (/allOf/-), the union tag (/meta:immutableTags) or top-level "
                              "fields.")


def _standard_names(classes: list[str]) -> set[str]:
    return {n for c in classes if c in CLASSES for n in CLASSES[c]["properties"]}


def has_path(props: dict, path: str) -> bool:
    cur = {"properties": props}
    for part in path.strip("/").split("/"):
        nxt = (cur.get("properties") or {}).get(part)
        if nxt is None:
            return False
        cur = nxt
    return True


def _registry_meta() -> dict:
    now = now_ms()
    return {"meta:registryMetadata": {"repo:createdDate": now, "repo:lastModifiedDate": now,
                                      "xdm:createdClientId": "aep-sandbox",
                                      "eTag": secrets.token_hex(16)}}


def _summary(res: dict) -> dict:
    return {"$id": res["$id"], "meta:altId": res["meta:altId"], "version": res["version"], "title": res["title"]}


def _check_lookup_accept(call: Call) -> str:
    accept = call.headers.get("accept", "")
    if "version=" not in accept.replace(" ", ""):
        raise errors.AcceptVersionMissing("A lookup must carry a version in its Accept header, e.g. "
                                          "'application/vnd.adobe.xed+json; version=1'.")
    return accept


def _list_response(call: Call, items: list[dict]) -> tuple[int, dict]:
    clauses = filters.parse(call.params.getlist("property"))
    items = [i for i in items if filters.matches(i, clauses)]
    order = call.params.get("orderby")
    if order:
        items.sort(key=lambda r: str(r.get(order.lstrip("-"), "")), reverse=order.startswith("-"))
    limit = call.int_param("limit", 300)
    start = call.int_param("start", 0)
    page = items[start:start + limit]
    full = "xed-id" not in call.headers.get("accept", "")
    results = page if full else [_summary(r) for r in page]
    # Schema Registry's spec: next is a string, the start of the next page, present only when there is one.
    more = {"next": str(start + limit)} if start + limit < len(items) else {}
    return 200, {"results": results, "_page": {"orderby": order or "", **more, "count": len(results)},
                 "_links": {}}


def register(router: Router) -> None:
    platform = router.platform

    def backend(call: Call) -> SchemaRegistryBackend:
        return SchemaRegistryBackend(call.scope, platform.credentials.tenant_id)

    def stats(call: Call):
        b = backend(call)
        return 200, {"imsOrg": call.scope.org, "tenantId": b.tenant,
                     "counts": {"schemas": len(b.list("schemas")), "mixins": len(b.list("mixins")),
                                "descriptors": len(b.descriptors())},
                     "recentlyCreatedResources": [], "classUsage": []}

    def create_fieldgroup(call: Call):
        return 201, backend(call).create_fieldgroup(call.json())

    def list_fieldgroups(call: Call):
        return _list_response(call, backend(call).list("mixins"))

    def get_fieldgroup(call: Call):
        _check_lookup_accept(call)
        return 200, backend(call).get(call.path["id"], "mixins")

    def create_schema(call: Call):
        return 201, backend(call).create_schema(call.json())

    def list_schemas(call: Call):
        return _list_response(call, backend(call).list("schemas"))

    def get_schema(call: Call):
        accept = _check_lookup_accept(call)
        b = backend(call)
        schema = b.get(call.path["id"], "schemas")
        if "xed-full" in accept:
            props, required = b.resolve(schema)
            schema = {**schema, "properties": props, "required": required}
        return 200, schema

    def patch_schema(call: Call):
        ops = call.json(list)
        if not isinstance(ops, list):
            raise errors.SandboxError("A schema PATCH body is a JSON Patch array.")
        return 200, backend(call).patch_schema(call.path["id"], ops)

    def patch_fieldgroup(call: Call):
        ops = call.json(list)
        if not isinstance(ops, list):
            raise errors.SandboxError("A field group PATCH body is a JSON Patch array.")
        return 200, backend(call).patch_fieldgroup(call.path["id"], ops)

    def create_descriptor(call: Call):
        return 201, backend(call).create_descriptor(call.json())

    def list_descriptors(call: Call):
        clauses = filters.parse(call.params.getlist("property"))
        items = [d for d in backend(call).descriptors() if filters.matches(d, clauses)]
        accept = call.headers.get("accept", "")
        grouped: dict[str, list] = {}
        for d in items:
            if "xdm-id" in accept:
                value = d["@id"]
            elif "xdm-link" in accept:
                value = f"{BASE}/tenant/descriptors/{d['@id']}"
            else:
                value = d
            grouped.setdefault(d["@type"], []).append(value)
        return 200, grouped

    def get_descriptor(call: Call):
        return 200, backend(call).descriptor(call.path["id"])

    def get_global(call: Call):
        _check_lookup_accept(call)
        ref = unquote(call.path["id"]).rstrip("/")
        for table, kind in ((CLASSES, "classes"), (STANDARD_FIELD_GROUPS, "mixins")):
            for rid, spec in table.items():
                if ref in (rid, spec.get("meta:altId")):
                    return 200, {"$id": rid, "title": spec["title"], "meta:resourceType": kind,
                                 "meta:containerId": "global", "version": "1.0",
                                 "properties": spec["properties"]}
        raise errors.XdmNotFound(f"No global resource with id {ref!r}.")

    for kind in ("fieldgroups", "mixins"):
        router.add(f"{BASE}/tenant/{kind}", ["POST"], create_fieldgroup)
        router.add(f"{BASE}/tenant/{kind}/", ["POST"], create_fieldgroup)
        router.add(f"{BASE}/tenant/{kind}", ["GET"], list_fieldgroups)
        router.add(f"{BASE}/tenant/{kind}/", ["GET"], list_fieldgroups)
        router.add(f"{BASE}/tenant/{kind}/{{id:path}}", ["GET"], get_fieldgroup)
        router.add(f"{BASE}/tenant/{kind}/{{id:path}}", ["PATCH"], patch_fieldgroup)
    router.add(f"{BASE}/stats", ["GET"], stats)
    router.add(f"{BASE}/stats/", ["GET"], stats)
    router.add(f"{BASE}/tenant/schemas", ["POST"], create_schema)
    router.add(f"{BASE}/tenant/schemas/", ["POST"], create_schema)
    router.add(f"{BASE}/tenant/schemas", ["GET"], list_schemas)
    router.add(f"{BASE}/tenant/schemas/", ["GET"], list_schemas)
    router.add(f"{BASE}/tenant/schemas/{{id:path}}", ["GET"], get_schema)
    router.add(f"{BASE}/tenant/schemas/{{id:path}}", ["PATCH"], patch_schema)
    router.add(f"{BASE}/tenant/descriptors", ["POST"], create_descriptor)
    router.add(f"{BASE}/tenant/descriptors/", ["POST"], create_descriptor)
    router.add(f"{BASE}/tenant/descriptors", ["GET"], list_descriptors)
    router.add(f"{BASE}/tenant/descriptors/", ["GET"], list_descriptors)
    router.add(f"{BASE}/tenant/descriptors/{{id:path}}", ["GET"], get_descriptor)
    router.add(f"{BASE}/global/classes/{{id:path}}", ["GET"], get_global)
    router.add(f"{BASE}/global/fieldgroups/{{id:path}}", ["GET"], get_global)
