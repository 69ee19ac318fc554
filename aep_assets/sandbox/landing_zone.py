"""The Data Landing Zone (``/data/foundation/connectors/landingzone``): container info and credentials.

reference/aep_api.md §8.1. Two containers: ``user_drop_zone`` (files for AEP to ingest) and
``dlz_destination`` (exports). With a DLZ bucket configured (``--dlz-bucket`` or
``AEP_SANDBOX_DLZ_BUCKET``, on the S3 endpoint of ``AWS_ENDPOINT_URL``) the containers are folders of
that bucket, and the API answers in AEP's AWS shape with the configured keys as the credentials, so
an AWS client reads exports exactly as it would from Adobe's DLZ. Otherwise the containers are local
directories and the API says so (``dlzProvider: "Local directory"``). Not modelled yet: the 7-day
deletion, the Azure shape, the source-DLZ explore endpoints.
"""

import os
import secrets
import time

from . import errors
from .config import SandboxConfig
from .destinations import Destination, LandingZone, S3Bucket
from .http import Call, Router

BASE = "/data/foundation/connectors/landingzone"
CONTAINERS = {"user_drop_zone": "dlz-user-container", "dlz_destination": "dlz-destination"}
CREDENTIALS_TTL_S = 12 * 3600


def landing_zone(config: SandboxConfig, container: str) -> Destination:
    if config.dlz_bucket:
        return S3Bucket(config.dlz_bucket, os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY"),
                        config.s3_endpoint_url, prefix=container)
    return LandingZone(config.landing_zone_dir, container)


def _container(call: Call) -> str:
    kind = call.params.get("type", "user_drop_zone")
    if kind not in CONTAINERS:
        raise errors.FlowBadRequest(f"type={kind!r} is not one of {sorted(CONTAINERS)}.")
    return CONTAINERS[kind]


def register(router: Router) -> None:
    config = router.platform.config

    def path_of(folder: str) -> tuple[dict, str]:
        if config.dlz_bucket:
            return {"bucketName": config.dlz_bucket, "dlzFolder": folder}, "Amazon S3"
        return {"directory": str(config.landing_zone_dir / folder), "dlzFolder": folder}, "Local directory"

    def container(call: Call):
        path, provider = path_of(_container(call))
        return 200, {"dlzPath": path, "dataTTL": {"timeUnit": "days", "timeQuantity": 7}, "dlzProvider": provider}

    def credentials(call: Call):
        path, provider = path_of(_container(call))
        body = {"dlzPath": path, "dlzProvider": provider, "expiryTime": int(time.time()) + CREDENTIALS_TTL_S}
        if config.dlz_bucket:  # the configured keys; the session token is a fresh one per call, as AEP's is
            body["credentials"] = {"awsAccessKeyId": os.environ.get("AWS_ACCESS_KEY_ID", ""),
                                   "awsSecretAccessKey": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                                   "awsSessionToken": secrets.token_urlsafe(32)}
        return 200, body

    router.add(BASE, ["GET"], container)
    router.add(f"{BASE}/credentials", ["GET"], credentials)
    router.add(f"{BASE}/credentials", ["POST"], credentials)  # ?action=refresh: new credentials
