"""What a deployment's functions read, with the values a local run gives them.

resourceGroup(), subscription(), tenant(), deployment() and environment()
return objects shaped as Azure returns them, filled with local stand-ins
(LOCAL); `--reference resourceGroup.location=westeurope` (or any other
path under these five names) replaces one. The resourceId family builds
ids exactly as ARM does, so what reads an id by its last segments (a
listener's frontendPort) finds the name it was given.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from appgw.config.fields import Invalid

SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
TENANT_ID = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "appgw-local"
LOCATION = "local"


def local_values() -> dict[str, dict[str, Any]]:
    """The deployment's context objects, keyed by lower-case function name."""
    subscription_id = f"/subscriptions/{SUBSCRIPTION_ID}"
    return {
        "subscription": {
            "id": subscription_id,
            "subscriptionId": SUBSCRIPTION_ID,
            "tenantId": TENANT_ID,
            "displayName": "appgw local",
        },
        "resourcegroup": {
            "id": f"{subscription_id}/resourceGroups/{RESOURCE_GROUP}",
            "name": RESOURCE_GROUP,
            "type": "Microsoft.Resources/resourceGroups",
            "location": LOCATION,
            "managedBy": None,
            "tags": {},
            "properties": {"provisioningState": "Succeeded"},
        },
        "tenant": {
            "countryCode": "US",
            "displayName": "appgw local",
            "id": f"/tenants/{TENANT_ID}",
            "tenantId": TENANT_ID,
        },
        "deployment": {
            "name": "appgw",
            "properties": {"templateLink": {"uri": ""}, "template": {}, "parameters": {}},
        },
        "environment": {
            "name": "AzureCloud",
            "gallery": "https://gallery.azure.com/",
            "graph": "https://graph.windows.net/",
            "portal": "https://portal.azure.com",
            "graphAudience": "https://graph.windows.net/",
            "activeDirectoryDataLake": "https://datalake.azure.net/",
            "batch": "https://batch.core.windows.net/",
            "media": "https://rest.media.azure.net",
            "sqlManagement": "https://management.core.windows.net:8443/",
            "vmImageAliasDoc": "",
            "resourceManager": "https://management.azure.com/",
            "authentication": {
                "loginEndpoint": "https://login.microsoftonline.com/",
                "audiences": ["https://management.core.windows.net/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "suffixes": {
                "acrLoginServer": ".azurecr.io",
                "azureDatalakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
                "azureDatalakeStoreFileSystem": "azuredatalakestore.net",
                "azureFrontDoorEndpointSuffix": "azurefd.net",
                "keyvaultDns": ".vault.azure.net",
                "sqlServerHostname": ".database.windows.net",
                "storage": "core.windows.net",
            },
        },
    }


CONTEXT_NAMES = {"subscription", "resourcegroup", "tenant", "deployment", "environment"}


def with_overrides(
    values: dict[str, dict[str, Any]], overrides: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """`values` with `--reference resourceGroup.location=...` style overrides set."""
    values = copy.deepcopy(values)
    for path, value in overrides.items():
        head, _, rest = path.partition(".")
        head = head.removesuffix("()").lower()
        if head in CONTEXT_NAMES and rest:
            set_path(values[head], rest.split("."), value)
    return values


def set_path(target: dict[str, Any], keys: list[str], value: Any) -> None:
    """target[k1][k2]... = value, making objects on the way (keys case-insensitive)."""
    for key in keys[:-1]:
        name = _key(target, key)
        if not isinstance(target.get(name), dict):
            target[name] = {}
        target = target[name]
    target[_key(target, keys[-1])] = value


def _key(target: Mapping[str, Any], key: str) -> str:
    return next((k for k in target if k.lower() == key.lower()), key)


def resource_id(args: list[Any], values: Mapping[str, Mapping[str, Any]]) -> str:
    """resourceId([subscriptionId], [resourceGroupName], type, name1, name2...).

    Also the gallery's resourceId(parentId, '/childType/childName'): a full id
    first is the parent, and the child's path is appended to it."""
    strings = _strings("resourceId", args)
    if len(strings) > 1 and _is_resource_id(strings[0]):
        return "/".join([strings[0].rstrip("/"), *(s.strip("/") for s in strings[1:])])
    at = _type_position("resourceId", strings)
    scope = strings[:at]
    if len(scope) > 2:
        raise Invalid(
            "resourceId(): at most a subscription id and a resource group before the type"
        )
    subscription = scope[0] if len(scope) == 2 else values["subscription"]["subscriptionId"]
    group = scope[-1] if scope else values["resourcegroup"]["name"]
    tail = _provider_path("resourceId", strings[at], strings[at + 1 :])
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{tail}"


def subscription_resource_id(args: list[Any], values: Mapping[str, Mapping[str, Any]]) -> str:
    strings = _strings("subscriptionResourceId", args)
    at = _type_position("subscriptionResourceId", strings)
    subscription = strings[0] if at == 1 else values["subscription"]["subscriptionId"]
    tail = _provider_path("subscriptionResourceId", strings[at], strings[at + 1 :])
    return f"/subscriptions/{subscription}/providers/{tail}"


def tenant_resource_id(args: list[Any]) -> str:
    strings = _strings("tenantResourceId", args)
    return "/providers/" + _provider_path("tenantResourceId", strings[0], strings[1:])


def extension_resource_id(args: list[Any]) -> str:
    strings = _strings("extensionResourceId", args)
    if len(strings) < 3:
        raise Invalid("extensionResourceId() takes a resource id, a type and names")
    tail = _provider_path("extensionResourceId", strings[1], strings[2:])
    return f"{strings[0].rstrip('/')}/providers/{tail}"


def _strings(name: str, args: list[Any]) -> list[str]:
    if not all(isinstance(a, str) for a in args):
        raise Invalid(f"{name}(): every argument must be a string")
    return list(args)


def _is_resource_id(text: str) -> bool:
    return text.startswith("/") and "/providers/" in text.lower()


def _type_position(name: str, strings: list[str]) -> int:
    for i, text in enumerate(strings):
        if "/" in text and "." in text.split("/")[0]:
            return i
    raise Invalid(f"{name}(): no resource type (such as Microsoft.Network/applicationGateways)")


def _provider_path(name: str, kind: str, names: list[str]) -> str:
    namespace, *types = kind.strip("/").split("/")  # 'a/b/' is written too
    names = "/".join(names).split("/")  # 'gw/p80' as well as 'gw', 'p80'
    if len(types) != len(names) or not types:
        raise Invalid(f"{name}(): the type {kind!r} needs {len(types)} name(s), got {len(names)}")
    return "/".join([namespace, *(f"{t}/{n}" for t, n in zip(types, names, strict=True))])
