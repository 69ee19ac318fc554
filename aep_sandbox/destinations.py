"""Where exports land: the Data Landing Zone (a local directory, or an S3 bucket) or a customer's S3 bucket."""

from pathlib import Path

from . import names

TTL_DAYS = 7  # AEP deletes Data Landing Zone files after seven days; its SAS tokens last as long


class Destination:
    def write(self, key: str, data: bytes) -> str:
        raise NotImplementedError


class LandingZone(Destination):
    """The ``dlz-destination`` container, kept under the sandbox's landing-zone directory."""

    def __init__(self, root: Path, container: str = "dlz-destination") -> None:
        self.root = Path(root) / container

    def write(self, key: str, data: bytes) -> str:
        path = names.inside(self.root, names.relative_path(key, "Export path"))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return str(path)


class S3Bucket(Destination):
    def __init__(self, bucket: str, access_key: str | None, secret_key: str | None,
                 endpoint_url: str | None, prefix: str = "") -> None:
        import boto3  # only when a destination is on S3: a twentieth of a second of every start

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client("s3", aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                   endpoint_url=endpoint_url)

    def write(self, key: str, data: bytes) -> str:
        key = names.relative_path(key, "Export path")
        key = f"{self.prefix}/{key}" if self.prefix else key
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"
