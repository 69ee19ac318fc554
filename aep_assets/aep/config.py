"""Where AEP is and who is calling."""

import os
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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "AEPConfig":
        """Read the ``AEP_*`` variables (see README and .env.example)."""
        env = dict(os.environ if env is None else env)
        missing = [k for k in ("AEP_CLIENT_ID", "AEP_CLIENT_SECRET", "AEP_ORG_ID") if not env.get(k)]
        if missing:
            raise ValueError(f"Set {', '.join(missing)} to reach AEP (see .env.example), or unset AEP_CLIENT_ID "
                             "to use the local sandbox.")
        return cls(
            platform_url=env.get("AEP_PLATFORM_URL", "https://platform.adobe.io"),
            ims_url=env.get("AEP_IMS_URL", "https://ims-na1.adobelogin.com"),
            client_id=env["AEP_CLIENT_ID"], client_secret=env["AEP_CLIENT_SECRET"], org_id=env["AEP_ORG_ID"],
            sandbox_name=env.get("AEP_SANDBOX_NAME", "prod"),
            scopes=env.get("AEP_SCOPES", DEFAULT_SCOPES).replace(" ", ""),
        )
