"""The reference's hash helpers (rtc.app.hash): what its keys are made of."""

import base64
import hashlib
import uuid
from typing import Union

HASH_SIZE_IN_BYTES = 8


def short_hash(data: Union[str, bytes]) -> str:
    """Returns base64url (no padding, ~ for -) of md5's first 8 bytes, as the reference."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    digest = hashlib.md5(data).digest()[0:HASH_SIZE_IN_BYTES]
    return base64.urlsafe_b64encode(digest).decode("utf-8").rstrip("=").replace("-", "~")


def get_random_bytes() -> bytes:
    """Returns 16 random bytes (`.hex()` gives a random name)."""
    return uuid.uuid4().bytes
