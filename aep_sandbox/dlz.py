"""Where the Data Landing Zone's containers live, by the sandbox's ``dlz`` setting (see landing_zone.py)."""

import json
import os
import secrets
import time

from . import errors
from .config import SandboxConfig
from .destinations import TTL_DAYS, Destination, LandingZone, S3Bucket

CREDENTIALS_TTL_S = 12 * 3600


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
        """Temporary credentials that read this container's folder and nothing else: STS AssumeRole on
        ``AEP_SANDBOX_DLZ_ROLE_ARN`` with a session policy scoped to the folder, fresh on every call as AEP's
        are. Without a role the sandbox refuses: it never hands out the keys it runs with."""
        import boto3

        role = os.environ.get("AEP_SANDBOX_DLZ_ROLE_ARN")
        if not role:
            raise errors.CredentialsRefused(
                "This sandbox's S3 Data Landing Zone has no role to issue scoped credentials with; start it with "
                "AEP_SANDBOX_DLZ_ROLE_ARN set to a role that may read the DLZ bucket. The keys the sandbox runs "
                "with are never given out.")
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [f"arn:aws:s3:::{self.bucket}/{container}/*"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{self.bucket}"],
             "Condition": {"StringLike": {"s3:prefix": [f"{container}/*"]}}}]}
        sts = boto3.client("sts", endpoint_url=self.endpoint_url,
                           region_name=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")))
        issued = sts.assume_role(RoleArn=role, RoleSessionName=f"aep-sandbox-dlz-{secrets.token_hex(4)}",
                                 Policy=json.dumps(policy), DurationSeconds=CREDENTIALS_TTL_S)["Credentials"]
        keys = {"awsAccessKeyId": issued["AccessKeyId"], "awsSecretAccessKey": issued["SecretAccessKey"],
                "awsSessionToken": issued["SessionToken"]}
        return {"credentials": keys,
                "dlzPath": self.info(container)["dlzPath"], "dlzProvider": "Amazon S3",
                "expiryTime": int(issued["Expiration"].timestamp())}

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
