"""API keys: generation, hashing, and resolving a bearer key to its tenant.

Keys are random 32-byte secrets, so a plain SHA-256 is the right hash: there is nothing to
brute-force that a slow hash would protect. Only hashes are stored; a key is shown once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping

from service.domain import ApiKey
from service.errors import Unauthorized
from service.store import Store

KEY_PREFIX = "rr_"
_CACHE_SECONDS = 5.0  # how long a revoked key may keep working on a replica that has seen it


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(tenant: str, label: str | None, now: float) -> tuple[ApiKey, str]:
    """A new key record and the secret to show once."""
    key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    key = ApiKey(key_id=key_id, tenant=tenant, label=label, created_at=now, revoked_at=None)
    return key, secret


class Authenticator:
    """Static keys from the settings, then keys stored by ``result-relay keys create``."""

    def __init__(self, store: Store, static_keys: Mapping[str, str]) -> None:
        self._store = store
        self._static = {hash_key(key): tenant for key, tenant in static_keys.items()}
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def tenant_for(self, authorization: str | None) -> str:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("send 'Authorization: Bearer <api key>'")
        digest = hash_key(key.strip())
        tenant = self._static.get(digest)
        if tenant is None:
            tenant = await self._stored_tenant(digest)
        if tenant is None:
            raise Unauthorized("the API key is not valid")
        return tenant

    async def _stored_tenant(self, digest: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        tenant = await self._store.tenant_for_key(digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (tenant, now + _CACHE_SECONDS)
        return tenant
