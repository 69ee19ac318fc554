"""Sandbox Management (``/data/foundation/sandbox-management``): what kind of sandbox a name is.

The local sandbox serves any sandbox name the gateway accepts. ``prod`` is of type production, as an
org's default sandbox is; every other name is a development sandbox. Not modelled yet: creating,
resetting and deleting sandboxes, and the list endpoints.
"""

from .http import Call, Router

BASE = "/data/foundation/sandbox-management"


def describe(name: str) -> dict:
    production = name == "prod"
    return {"name": name, "title": "Production" if production else name, "state": "active",
            "type": "production" if production else "development", "isDefault": production, "region": "VA7",
            "eTag": 1, "createdDate": "2026-01-01T00:00:00Z", "lastModifiedDate": "2026-01-01T00:00:00Z",
            "createdBy": "aep-sandbox", "lastModifiedBy": "aep-sandbox"}


def register(router: Router) -> None:
    def get_sandbox(call: Call):
        return 200, describe(call.path["name"])

    router.add(f"{BASE}/sandboxes/{{name}}", ["GET"], get_sandbox)
