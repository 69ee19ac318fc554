"""Where the Data Landing Zone's containers live, by the sandbox's ``dlz`` setting (see landing_zone.py)."""

import os
import secrets
import time

from .config import SandboxConfig
from .destinations import Destination, LandingZone, S3Bucket

CREDENTIALS_TTL_S = 12 * 3600
TTL_DAYS = 7  # AEP deletes DLZ files after seven days; its SAS tokens last as long


class LocalLandingZone:
    def __init__(self, config: SandboxConfig) -> None:
        self.root = config.landing_zone_dir

    def info(self, container: str) -> dict:
        return {"dlzPath": {"directory": str(self.root / container), "dlzFolder": container},
                "dataTTL": {"timeUnit": "days", "timeQuantity": TTL_DAYS}, "dlzProvider": "Local directory"}

    def credentials(self, container: str, refresh: bool = False) -> dict:
        info = self.info(container)
        return {"dlzPath": info["dlzPath"], "dlzProvider": info["dlzProvider"],
                "expiryTime": int(time.time()) + CREDENTIALS_TTL_S}

    def writer(self, container: str) -> Destination:
        return LandingZone(self.root, container)

    def shutdown(self) -> None:
        pass


class S3LandingZone:
    def __init__(self, config: SandboxConfig) -> None:
        self.bucket, self.endpoint_url = config.dlz_bucket, config.s3_endpoint_url

    def info(self, container: str) -> dict:
        return {"dlzPath": {"bucketName": self.bucket, "dlzFolder": container},
                "dataTTL": {"timeUnit": "days", "timeQuantity": TTL_DAYS}, "dlzProvider": "Amazon S3"}

    def credentials(self, container: str, refresh: bool = False) -> dict:
        # The configured keys; the session token is a fresh one per call, as AEP's is.
        return {"credentials": {"awsAccessKeyId": os.environ.get("AWS_ACCESS_KEY_ID", ""),
                                "awsSecretAccessKey": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                                "awsSessionToken": secrets.token_urlsafe(32)},
                "dlzPath": self.info(container)["dlzPath"], "dlzProvider": "Amazon S3",
                "expiryTime": int(time.time()) + CREDENTIALS_TTL_S}

    def writer(self, container: str) -> Destination:
        return S3Bucket(self.bucket, os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY"),
                        self.endpoint_url, prefix=container)

    def shutdown(self) -> None:
        pass


def open_landing_zone(config: SandboxConfig):
    """The DLZ the config asks for (its ``dlz`` is resolved by then)."""
    if config.dlz == "azure":  # imported only here: the Azure SDK is a fifth of a second of every start
        from .azurite import Azurite
        from .dlz_azure import AzureLandingZone

        return AzureLandingZone(Azurite(config.azurite_binary, config.data_dir / "azurite"))
    if config.dlz == "s3":
        return S3LandingZone(config)
    return LocalLandingZone(config)
