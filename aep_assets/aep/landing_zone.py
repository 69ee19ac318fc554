"""The Data Landing Zone: where its containers are, and temporary credentials to read or write them."""

from .session import AEPSession

BASE = "/data/foundation/connectors/landingzone"


class DataLandingZone:
    def __init__(self, session: AEPSession) -> None:
        self.session = session

    def container(self, kind: str = "dlz_destination") -> dict:
        """``dlzPath`` (bucket and folder), ``dlzProvider`` and the data TTL of ``user_drop_zone`` or
        ``dlz_destination``."""
        return self.session.json("GET", BASE, params={"type": kind})

    def credentials(self, kind: str = "dlz_destination", refresh: bool = False) -> dict:
        """AWS keys with a session token for the container (``credentials``), its ``dlzPath`` and
        ``expiryTime`` (epoch seconds); ``refresh`` asks for new ones."""
        if refresh:
            return self.session.json("POST", f"{BASE}/credentials", params={"type": kind, "action": "refresh"})
        return self.session.json("GET", f"{BASE}/credentials", params={"type": kind})

    def s3_client(self, kind: str = "dlz_destination", endpoint_url: str | None = None):
        """A boto3 S3 client with the container's credentials, and the container's (bucket, folder)."""
        import boto3

        found = self.credentials(kind)
        if found.get("dlzProvider") != "Amazon S3":
            raise ValueError(f"The {kind} container is on {found.get('dlzProvider')!r}, not Amazon S3; "
                             "read it with that provider's client.")
        keys = found["credentials"]
        client = boto3.client("s3", aws_access_key_id=keys["awsAccessKeyId"],
                              aws_secret_access_key=keys["awsSecretAccessKey"],
                              aws_session_token=keys["awsSessionToken"], endpoint_url=endpoint_url)
        return client, found["dlzPath"]["bucketName"], found["dlzPath"]["dlzFolder"]
