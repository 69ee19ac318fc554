"""Schema Registry: tenant id, field groups, schemas, identity descriptors, Profile union tags."""

from typing import Any
from urllib.parse import quote

from .session import AEPSession

BASE = "/data/foundation/schemaregistry"
XED = "application/vnd.adobe.xed+json; version=1"
XED_FULL = "application/vnd.adobe.xed-full+json; version=1"
XED_ID = "application/vnd.adobe.xed-id+json"


class SchemaRegistry:
    def __init__(self, session: AEPSession) -> None:
        self.session = session

    def tenant_id(self) -> str:
        return self.session.json("GET", f"{BASE}/stats")["tenantId"]

    def _find(self, kind: str, title: str) -> dict | None:
        data = self.session.json("GET", f"{BASE}/tenant/{kind}", params={"property": f"title=={title}"},
                                 headers={"Accept": XED_ID})
        for item in data.get("results", []):
            if item.get("title") == title:
                return item
        return None

    def find_fieldgroup(self, title: str) -> dict | None:
        return self._find("fieldgroups", title)

    def find_schema(self, title: str) -> dict | None:
        return self._find("schemas", title)

    def get_schema(self, schema_id: str, *, full: bool = False) -> dict:
        return self.session.json("GET", f"{BASE}/tenant/schemas/{quote(schema_id, safe='')}",
                                 headers={"Accept": XED_FULL if full else XED})

    def get_fieldgroup(self, fieldgroup_id: str) -> dict:
        return self.session.json("GET", f"{BASE}/tenant/fieldgroups/{quote(fieldgroup_id, safe='')}",
                                 headers={"Accept": XED})

    def ensure_fieldgroup(self, body: dict) -> tuple[dict, bool]:
        """Get the field group titled ``body['title']``, or create it. Returns (resource, created).

        Fields ``body`` has and the existing group lacks are added with an additive PATCH, so a
        project upgrade that adds fields works on a sandbox set up by an earlier version."""
        found = self.find_fieldgroup(body["title"])
        if not found:
            return self.session.json("POST", f"{BASE}/tenant/fieldgroups", json=body), True
        existing = self.get_fieldgroup(found["$id"])
        ops = [{"op": "add", "path": path, "value": value}
               for path, value in missing_fields(existing.get("definitions", {}), body.get("definitions", {}),
                                                 "/definitions")]
        if ops:
            existing = self.session.json("PATCH", f"{BASE}/tenant/fieldgroups/{quote(found['$id'], safe='')}",
                                         json=ops)
        return existing, False

    def ensure_schema(self, body: dict) -> tuple[dict, bool]:
        found = self.find_schema(body["title"])
        if found:
            return self.get_schema(found["$id"]), False
        return self.session.json("POST", f"{BASE}/tenant/schemas", json=body), True

    def descriptors(self, schema_id: str) -> list[dict]:
        data = self.session.json("GET", f"{BASE}/tenant/descriptors",
                                 params={"property": f"xdm:sourceSchema=={schema_id}"},
                                 headers={"Accept": "application/vnd.adobe.xdm+json"})
        return [d for group in (data or {}).values() if isinstance(group, list) for d in group
                if isinstance(d, dict) and d.get("xdm:sourceSchema") == schema_id]

    def ensure_identity_descriptor(self, schema_id: str, source_property: str, namespace: str,
                                   primary: bool = True) -> tuple[dict, bool]:
        for d in self.descriptors(schema_id):
            if d.get("@type") == "xdm:descriptorIdentity" and d.get("xdm:sourceProperty") == source_property:
                return d, False
        body = {"@type": "xdm:descriptorIdentity", "xdm:sourceSchema": schema_id, "xdm:sourceVersion": 1,
                "xdm:sourceProperty": source_property, "xdm:namespace": namespace, "xdm:property": "xdm:code",
                "xdm:isPrimary": primary}
        return self.session.json("POST", f"{BASE}/tenant/descriptors", json=body), True

    def enable_profile_union(self, schema: dict) -> dict:
        """Add the immutable ``union`` tag; reference/aep_api.md §3.7. A no-op when it is there."""
        if "union" in (schema.get("meta:immutableTags") or []):
            return schema
        ops: list[dict[str, Any]] = [{"op": "add", "path": "/meta:immutableTags", "value": ["union"]}]
        return self.session.json("PATCH", f"{BASE}/tenant/schemas/{quote(schema['$id'], safe='')}", json=ops)


def missing_fields(have: dict, want: dict, path: str):
    """(JSON pointer, value) of every key of ``want`` absent from ``have``, recursing into shared keys."""
    for key, value in want.items():
        pointer = f"{path}/{key.replace('~', '~0').replace('/', '~1')}"
        if key not in have:
            yield pointer, value
        elif isinstance(value, dict) and isinstance(have[key], dict):
            yield from missing_fields(have[key], value, pointer)
