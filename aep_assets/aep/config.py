"""Where AEP is and who is calling."""

from dataclasses import dataclass, field

DEFAULT_SCOPES = "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"


@dataclass(frozen=True)
class AEPConfig:
    platform_url: str
    ims_url: str
    client_id: str
    client_secret: str = field(repr=False)
    org_id: str
    sandbox_name: str = "prod"
    scopes: str = DEFAULT_SCOPES
    timeout_s: float = 60.0
    max_retries: int = 6
