"""The Data Landing Zone: where its containers are, temporary credentials for them, and a reader of the
files AEP exports there, whichever cloud the org's DLZ is on (Azure Blob by default, or Amazon S3)."""

from pathlib import Path

from .session import AEPSession

BASE = "/data/foundation/connectors/landingzone"


class DataLandingZone:
    def __init__(self, session: AEPSession) -> None:
        self.session = session

    def container(self, kind: str = "dlz_destination") -> dict:
        """The container of ``user_drop_zone`` or ``dlz_destination``: ``containerName`` and ``containerTTL`` on
        Azure; ``dlzPath`` (bucket and folder), ``dlzProvider`` and ``dataTTL`` on AWS."""
        return self.session.json("GET", BASE, params={"type": kind})

    def credentials(self, kind: str = "dlz_destination", refresh: bool = False) -> dict:
        """On Azure, a SAS token for the container (``SASToken``, ``SASUri``, ``storageAccountName``,
        ``expiryDate``); on AWS, keys with a session token (``credentials``), ``dlzPath`` and ``expiryTime``.
        ``refresh`` asks for new ones, revoking the old."""
        if refresh:
            return self.session.json("POST", f"{BASE}/credentials", params={"type": kind, "action": "refresh"})
        return self.session.json("GET", f"{BASE}/credentials", params={"type": kind})

    def s3_client(self, kind: str = "dlz_destination", endpoint_url: str | None = None):
        """A boto3 S3 client with the container's credentials, and the container's (bucket, folder)."""
        found = self.credentials(kind)
        if found.get("dlzProvider") != "Amazon S3":
            raise ValueError(f"The {kind} container is on {_provider(found)!r}, not Amazon S3; read it with "
                             "DataLandingZone.reader(), which picks the provider's client.")
        return _s3_client(found, endpoint_url), found["dlzPath"]["bucketName"], found["dlzPath"]["dlzFolder"]

    def reader(self, kind: str = "dlz_destination", endpoint_url: str | None = None) -> "LandingZoneReader":
        """Read the container with fresh credentials, on whichever provider AEP says it is."""
        found = self.credentials(kind)
        if "SASUri" in found:
            return AzureReader(found["SASUri"])
        if found.get("dlzProvider") == "Amazon S3":
            path = found["dlzPath"]
            return S3Reader(_s3_client(found, endpoint_url), path["bucketName"], path["dlzFolder"])
        if found.get("dlzProvider") == "Local directory":
            return LocalReader(Path(found["dlzPath"]["directory"]))
        raise ValueError(f"The {kind} container is on {_provider(found)!r}, which aep_assets cannot read yet.")


class LandingZoneReader:
    """Files of one DLZ container, by their name inside it."""

    def read(self, name: str) -> bytes:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def uri(self, name: str) -> str:
        """Where the file is, without any credential in it (the URI goes into metadata)."""
        raise NotImplementedError


class AzureReader(LandingZoneReader):
    def __init__(self, sas_uri: str) -> None:
        from azure.storage.blob import ContainerClient

        self.container = ContainerClient.from_container_url(sas_uri)
        self.base = sas_uri.split("?", 1)[0]  # the SAS token is a secret: never part of a URI we report

    def read(self, name: str) -> bytes:
        return self.container.download_blob(name).readall()

    def list(self, prefix: str) -> list[str]:
        return sorted(blob.name for blob in self.container.list_blobs(name_starts_with=prefix))

    def uri(self, name: str) -> str:
        return f"{self.base}/{name}"


class S3Reader(LandingZoneReader):
    def __init__(self, client, bucket: str, folder: str) -> None:
        self.client, self.bucket, self.folder = client, bucket, folder.strip("/")

    def read(self, name: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=f"{self.folder}/{name}")["Body"].read()

    def list(self, prefix: str) -> list[str]:
        names: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=f"{self.folder}/{prefix}")
        for page in pages:
            names += [obj["Key"][len(self.folder) + 1:] for obj in page.get("Contents", [])]
        return sorted(names)

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.folder}/{name}"


class LocalReader(LandingZoneReader):
    """The sandbox's fallback DLZ, a directory on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def list(self, prefix: str) -> list[str]:
        folder = self.root / prefix.rpartition("/")[0]
        found = (p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())
        return sorted(name for name in found if name.startswith(prefix))

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()


def _s3_client(found: dict, endpoint_url: str | None):
    import boto3

    keys = found["credentials"]
    return boto3.client("s3", aws_access_key_id=keys["awsAccessKeyId"],
                        aws_secret_access_key=keys["awsSecretAccessKey"],
                        aws_session_token=keys["awsSessionToken"], endpoint_url=endpoint_url)


def _provider(found: dict) -> str:
    return found.get("dlzProvider") or ("Azure Blob Storage" if "SASUri" in found else "an unknown provider")
