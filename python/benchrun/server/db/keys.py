"""Secrets the server hands out: runner keys (upstream's format) and user API tokens. Only their
SHA-256 hex is stored; authentication hashes the presented secret and looks the hash up."""

from __future__ import annotations

import hashlib
import re
import secrets
import string

RUNNER_KEY_PREFIX = "bencher_runner_"
RUNNER_KEY_RANDOM = 30  # upstream lib/bencher_valid/src/keys/mod.rs KEY_RANDOM_LEN
USER_TOKEN_PREFIX = "benchrun_user_"
USER_TOKEN_RANDOM = 32

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_RUNNER_KEY = re.compile(rf"^{RUNNER_KEY_PREFIX}[0-9A-Za-z]{{{RUNNER_KEY_RANDOM}}}$")
_USER_TOKEN = re.compile(rf"^{USER_TOKEN_PREFIX}[0-9A-Za-z]{{{USER_TOKEN_RANDOM}}}$")


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_runner_key() -> str:
    return RUNNER_KEY_PREFIX + _random(RUNNER_KEY_RANDOM)


def new_user_token() -> str:
    return USER_TOKEN_PREFIX + _random(USER_TOKEN_RANDOM)


def is_runner_key(value: str) -> bool:
    return isinstance(value, str) and _RUNNER_KEY.match(value) is not None


def is_user_token(value: str) -> bool:
    return isinstance(value, str) and _USER_TOKEN.match(value) is not None


def secret_hash(secret: str) -> str:
    """SHA-256 hex, as upstream stores runner.key_hash. The secrets carry 178+ bits of entropy, so
    an unsalted fast hash is enough: a stolen table does not reveal a usable key."""
    return hashlib.sha256(secret.encode()).hexdigest()
