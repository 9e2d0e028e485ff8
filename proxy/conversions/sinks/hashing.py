"""User data as the networks want it: SHA-256 of the normalised value, hex.

Meta, TikTok, LinkedIn and Indeed all ask for the same normalisation of identifiers
(trimmed, lower case) before hashing; nothing a network did not ask for is sent raw.
"""

from __future__ import annotations

import hashlib


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()
