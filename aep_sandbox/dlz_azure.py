"""The Data Landing Zone's containers on Azurite (``dlz: azure``), in AEP's Azure shape."""

import datetime as dt
import uuid

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import AccessPolicy, ContainerSasPermissions, generate_container_sas

from .azurite import AzureContainer, Azurite
from .destinations import TTL_DAYS, Destination

# AEP's DLZ tokens carry sp=racwdlm; the Python SDK has no "m" (move), the rest is the same.
SAS_PERMISSIONS = ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True, list=True)


class AzureLandingZone:
    """The containers on Azurite, in AEP's Azure shape. Clients get a SAS token scoped to one container, signed
    against a stored access policy, so that a refresh revokes the tokens issued before it (as AEP's
    ``si=dlz-...`` tokens are)."""

    def __init__(self, azurite: Azurite) -> None:
        self.azurite = azurite

    def info(self, container: str) -> dict:
        return {"containerName": container, "containerTTL": str(TTL_DAYS)}

    def _container(self, name: str):
        container = self.azurite.service().get_container_client(name)
        try:
            container.create_container()
        except ResourceExistsError:
            pass
        return container

    def credentials(self, name: str, refresh: bool = False) -> dict:
        """AEP's Azure shape. The token stays the same until it expires or ``refresh`` replaces it."""
        container = self._container(name)
        policies = container.get_container_access_policy()["signed_identifiers"]
        now = dt.datetime.now(dt.UTC)
        current = next((p for p in policies if p.access_policy and p.access_policy.expiry
                        and _utc(p.access_policy.expiry) > now), None)
        if refresh or current is None:
            expiry = (now + dt.timedelta(days=TTL_DAYS)).replace(microsecond=0)
            policy_id = f"dlz-{uuid.uuid4()}"
            # Replacing the container's only policy revokes every token signed against the old one.
            container.set_container_access_policy(
                signed_identifiers={policy_id: AccessPolicy(permission=SAS_PERMISSIONS, expiry=expiry)})
        else:
            policy_id, expiry = current.id, _utc(current.access_policy.expiry)
        token = generate_container_sas(self.azurite.account.name, name, account_key=self.azurite.account.key,
                                       policy_id=policy_id)
        return {"containerName": name, "SASToken": token, "storageAccountName": self.azurite.account.name,
                "SASUri": f"{self.azurite.url}/{name}?{token}", "expiryDate": expiry.date().isoformat()}

    def writer(self, name: str) -> Destination:
        return AzureContainer(self._container(name))

    def shutdown(self) -> None:
        self.azurite.stop()


def _utc(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
