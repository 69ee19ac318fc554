"""A client for Adobe Experience Platform's REST APIs: auth, retries, typed errors, one module per service.

No Dagster here. The same code talks to real AEP and to the local sandbox; only the URLs and
credentials differ.
"""

from .client import AEPClient
from .config import AEPConfig
from .errors import AEPError, AEPStatusError

__all__ = ["AEPClient", "AEPConfig", "AEPError", "AEPStatusError"]
