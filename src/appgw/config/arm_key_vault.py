"""Key Vault as a template declares it: a vault's vaultUri, and the secrets
the template itself writes.

A vault's `vaultUri` exists once deployed, but Azure derives it from the
vault's name (`https://NAME.vault.azure.net/`, the suffix from
environment()), so reference(vault).vaultUri is that. A
`keyVaultSecretId` (`https://NAME.vault.azure.net/secrets/SECRET[/VERSION]`)
whose secret the same template creates (a `Microsoft.KeyVault/vaults/secrets`
resource named `NAME/SECRET`) is read from that resource's `properties.value`;
any other secret exists only in Azure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from appgw.config.fields import Invalid

VAULT_TYPE = "microsoft.keyvault/vaults"
SECRET_TYPE = "microsoft.keyvault/vaults/secrets"


def vault_uri(name: str, context: Mapping[str, Any]) -> str:
    """The vaultUri Azure gives a vault named `name`."""
    suffixes = context["environment"].get("suffixes") or {}
    return f"https://{name}{suffixes.get('keyvaultDns', '.vault.azure.net')}/"


def declared_secret(
    resources: Mapping[str, tuple[Mapping[str, Any], Any]], secret_id: str
) -> str | None:
    """The value the template gives the secret `secret_id` names, or None
    when the template does not create that secret. `resources` are the
    template's (Template.shared.resources: short name -> (resource, scope))."""
    parsed = urlparse(secret_id)
    vault = (parsed.hostname or "").split(".")[0].lower()
    segments = [s for s in parsed.path.split("/") if s]
    if not vault or len(segments) < 2 or segments[0].lower() != "secrets":
        return None
    found = resources.get(segments[1].lower())
    if found is None:
        return None
    spec, scope = found
    if str(spec.get("type", "")).lower() != SECRET_TYPE:
        return None
    try:
        name = str(scope.resolve(spec.get("name")))
    except Invalid:
        return None
    if name.rstrip("/").split("/")[0].lower() != vault:
        return None
    properties = {str(k).lower(): v for k, v in (spec.get("properties") or {}).items()}
    value = scope.resolve(properties.get("value"))
    return value if isinstance(value, str) else None
