"""The emulator's configuration and the small facts every part of it shares."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

DEFAULT_MAX_UPLOAD = 500 * 1024 * 1024
INACTIVE = ("DELETED", "CANCELLED", "SUPERSEDED", "FAILED")
REGISTRY = "registry.sgp-emulator.local"


@dataclass
class EmulatorConfig:
    """Everything the command line sets (docs/emulator.md#flags), plus the internal upload limit."""

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None
    account_id: str | None = None
    dialect: str = "current"
    build_seconds: float = 2.0
    deploy_seconds: float = 2.0
    seed: int | None = None
    faults: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD


def identity(api_key: str) -> dict[str, str]:
    """The `created_by` identity of an API key (stable per key, never the key itself)."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    return {"id": str(uuid.UUID(digest[:32])), "type": "service_account", "object": "identity"}
