"""The Data Landing Zone (``/data/foundation/connectors/landingzone``): container info and credentials.

reference/aep_api.md §8.1 and help/sources/tutorials/api/create/cloud-storage/data-landing-zone.md. Two
containers: ``user_drop_zone`` (files for AEP to ingest) and ``dlz_destination`` (exports). Where they live is
the sandbox's ``dlz`` setting (``--dlz`` or ``AEP_SANDBOX_DLZ``):

- ``azure``, AEP's default: Azure Blob containers on Azurite, credentials in AEP's Azure shape (a SAS token
  and URI scoped to the container). The default whenever ``azurite-blob`` is installed.
- ``s3``: folders of the S3 bucket ``--dlz-bucket`` on ``AWS_ENDPOINT_URL``, credentials in AEP's AWS shape.
  The default when a DLZ bucket is configured.
- ``local``: directories under the landing-zone dir (``dlzProvider: "Local directory"``). The fallback.

Not modelled: the 7-day deletion and the source-DLZ explore endpoints.
"""

from . import errors
from .http import Call, Router

BASE = "/data/foundation/connectors/landingzone"
CONTAINERS = {"user_drop_zone": "dlz-user-container", "dlz_destination": "dlz-destination"}


def _container(call: Call) -> str:
    kind = call.params.get("type", "user_drop_zone")
    if kind not in CONTAINERS:
        raise errors.FlowBadRequest(f"type={kind!r} is not one of {sorted(CONTAINERS)}.")
    return CONTAINERS[kind]


def register(router: Router) -> None:
    zone = router.platform.landing_zone

    def container(call: Call):
        return 200, zone.info(_container(call))

    def credentials(call: Call):
        refresh = call.request.method == "POST" and call.params.get("action") == "refresh"
        return 200, zone.credentials(_container(call), refresh=refresh)

    router.add(BASE, ["GET"], container)
    router.add(f"{BASE}/credentials", ["GET"], credentials)
    router.add(f"{BASE}/credentials", ["POST"], credentials)  # ?action=refresh: new credentials
