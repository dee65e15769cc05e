"""Content digests of JSON-able payloads: the one form every cache key and record digest uses."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def json_digest(payload: Any) -> str:
    """sha256 of `payload` as JSON with sorted keys: equal payloads, equal digests."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
