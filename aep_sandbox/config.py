"""Sandbox configuration: where state lives, who may call, and how fast lifecycles move."""

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .azurite import azurite_binary
from .lifecycle import parse_paces

CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """The OAuth server-to-server credentials the sandbox accepts, generated once per data dir."""

    client_id: str
    client_secret: str = field(repr=False)
    org_id: str
    tenant_id: str

    @classmethod
    def load_or_create(cls, data_dir: Path) -> "Credentials":
        path = data_dir / CREDENTIALS_FILE
        if path.exists():
            return cls(**json.loads(path.read_text()))
        data_dir.mkdir(parents=True, exist_ok=True)
        creds = cls(
            client_id="aep-sandbox-" + secrets.token_hex(4),
            client_secret="p8e-" + secrets.token_urlsafe(24),
            org_id=secrets.token_hex(12).upper() + "@AdobeOrg",
            tenant_id="aepsandbox",
        )
        tmp = path.with_suffix(".tmp")
        # Owner-only from the first byte: the file holds the client secret.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(creds.__dict__, indent=2))
        try:
            # Another process may have won the race: keep whichever landed first.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return cls(**json.loads(path.read_text()))


@dataclass
class Fault:
    """One injected failure, ``times`` times or at ``rate``, for requests matching ``path`` and ``method``.

    ``target="http"``: wait ``delay_s`` (a slow response), then drop the connection (``drop``), answer
    ``status`` with AEP's error body, or, with neither, serve the request as usual.
    ``target="batch"``: the batch being processed fails (code INTERNAL), as AEP's batches sometimes do.
    """

    status: int = 0
    path: str = ""
    method: str = ""
    times: int | None = None
    rate: float | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    drop: bool = False
    target: str = "http"

    def __post_init__(self) -> None:
        if self.target not in ("http", "batch"):
            raise ValueError(f"fault target {self.target!r} is not 'http' or 'batch'.")
        if self.target == "http" and not (self.status or self.drop or self.delay_s):
            raise ValueError("An http fault needs a status, drop or delay_s.")


@dataclass
class SandboxConfig:
    data_dir: Path
    landing_zone_dir: Path | None = None
    token_ttl_s: int = 86399
    # How each asynchronous lifecycle moves on (lifecycle.py): kind -> Pace; immediate when absent.
    lifecycles: dict = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    fault_seed: int | None = None  # seeds the draws of faults with a rate; None: a random seed, logged
    s3_endpoint_url: str | None = None
    dlz_bucket: str | None = None  # keep the Data Landing Zone in this S3 bucket instead of landing_zone_dir
    # Where the Data Landing Zone lives: "azure" (Azurite), "s3" (dlz_bucket) or "local" (landing_zone_dir).
    # None: AEP_SANDBOX_DLZ, else s3 with a bucket, azure when Azurite is installed, local otherwise.
    dlz: str | None = None
    azurite_binary: str | None = None
    pg_max_connections: int | None = None  # sessions the PostgreSQL endpoint serves at once (default 64)
    # PostgreSQL's authentication_timeout: a client that has not logged in by then is disconnected. At most
    # pg_max_connections clients may be logging in at once; others are turned away at once.
    pg_auth_timeout_s: float | None = None
    # Query Service's guardrails (help/query-service/guardrails.md): an ad hoc SELECT runs at most 10 minutes
    # (error 53400), a batch query (CTAS, INSERT INTO) at most 24 hours.
    adhoc_timeout_s: float | None = None
    batch_timeout_s: float | None = None
    # Where the Query Service PostgreSQL endpoint listens (connection_parameters gives it to clients); None:
    # not served.
    pg_address: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        dir_given = self.landing_zone_dir is not None
        if self.landing_zone_dir is None:
            self.landing_zone_dir = self.data_dir / "landing-zone"
        self.landing_zone_dir = Path(self.landing_zone_dir).resolve()
        if self.s3_endpoint_url is None:
            self.s3_endpoint_url = os.environ.get("AWS_ENDPOINT_URL")
        if self.dlz_bucket is None:
            self.dlz_bucket = os.environ.get("AEP_SANDBOX_DLZ_BUCKET") or None
        self._resolve_dlz(dir_given)
        if not self.lifecycles and os.environ.get("AEP_SANDBOX_LIFECYCLES"):
            self.lifecycles = parse_paces(os.environ["AEP_SANDBOX_LIFECYCLES"])
        if self.adhoc_timeout_s is None:
            self.adhoc_timeout_s = float(os.environ.get("AEP_SANDBOX_ADHOC_TIMEOUT_S", "600"))
        if self.batch_timeout_s is None:
            self.batch_timeout_s = float(os.environ.get("AEP_SANDBOX_BATCH_TIMEOUT_S", "86400"))
        if self.pg_max_connections is None:
            self.pg_max_connections = int(os.environ.get("AEP_SANDBOX_PG_MAX_CONNECTIONS", "64"))
        if self.pg_auth_timeout_s is None:
            self.pg_auth_timeout_s = float(os.environ.get("AEP_SANDBOX_PG_AUTH_TIMEOUT_S", "60"))

    def _resolve_dlz(self, dir_given: bool) -> None:
        self.azurite_binary = self.azurite_binary or azurite_binary()
        # A landing-zone dir given means a local DLZ (the demo's exports land inside its storage that way).
        chosen = self.dlz or os.environ.get("AEP_SANDBOX_DLZ") or (
            "s3" if self.dlz_bucket else "local" if dir_given else "azure" if self.azurite_binary else "local")
        if chosen not in ("azure", "s3", "local"):
            raise ValueError(f"dlz={chosen!r} is not one of azure, s3, local (set --dlz or AEP_SANDBOX_DLZ).")
        if chosen == "s3" and not self.dlz_bucket:
            raise ValueError("dlz='s3' needs a bucket: set --dlz-bucket or AEP_SANDBOX_DLZ_BUCKET.")
        if chosen == "azure" and not self.azurite_binary:
            raise ValueError("dlz='azure' needs Azurite: install it with `npm install -g azurite`, or point "
                             "AEP_SANDBOX_AZURITE at its azurite-blob.")
        self.dlz = chosen

    @property
    def credentials(self) -> Credentials:
        return Credentials.load_or_create(self.data_dir)

    @staticmethod
    def parse_faults(text: str | None) -> list[Fault]:
        if not text:
            return []
        return [Fault(**f) for f in json.loads(text)]
