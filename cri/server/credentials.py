"""Registry credentials at the daemon's boundary: the CRI AuthConfig of a
PullImage call and the per-registry entries of the config file, both turned
into the registry client's ``Credentials``.  Nothing here is ever logged."""

from __future__ import annotations

from collections.abc import Mapping

from cri_api.v1 import api_pb2

from dockyard.cri.config import RegistryCredential
from dockyard.cri.image.registry.auth import Credentials, StaticCredentials, credentials_from_auth_config


def from_cri_auth(auth: api_pb2.AuthConfig) -> Credentials | None:
    return credentials_from_auth_config(
        username=auth.username,
        password=auth.password,
        auth=auth.auth,
        server_address=auth.server_address,
        identity_token=auth.identity_token,
        registry_token=auth.registry_token,
    )


def credential_source(configured: Mapping[str, RegistryCredential]) -> StaticCredentials:
    by_host: dict[str, Credentials] = {}
    for host, cred in configured.items():
        converted = credentials_from_auth_config(
            username=cred.username,
            password=cred.password,
            auth=cred.auth,
            server_address=host,
            identity_token=cred.identity_token,
        )
        if converted is not None:
            by_host[host] = converted
    return StaticCredentials(by_host)
