"""Where an API key may come from and where it may go (pure checks, used by config and the HTTP client).

- A key is read only from an environment variable with the ``LIRA_`` prefix or one of
  :data:`ALLOWED_KEY_ENVS`: a params file (or a flow-run override) must not be able to name
  ``AWS_SECRET_ACCESS_KEY`` and have it sent as a Bearer token.
- A key is sent only over https, or over plain http to a loopback host (a local vLLM / llama.cpp
  server); anything else could be read on the wire.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

KEY_ENV_PREFIX = "LIRA_"
ALLOWED_KEY_ENVS = frozenset({"OPENAI_API_KEY"})
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def check_key_env(name: str) -> str:
    """``name`` if a key may be read from it, else ValueError saying what is allowed."""
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"api_key_env = {name!r} is not an environment variable name (A-Z, 0-9, _)")
    if not (name.startswith(KEY_ENV_PREFIX) or name in ALLOWED_KEY_ENVS):
        raise ValueError(f"api_key_env = {name!r} is not allowed: use a variable named {KEY_ENV_PREFIX}* "
                         f"or one of {sorted(ALLOWED_KEY_ENVS)}")
    return name


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_key_transport(url: str) -> str:
    """``url`` if a key may be sent to it, else ValueError (plain http only to loopback)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        return url
    if scheme == "http" and is_loopback(parts.hostname):
        return url
    if scheme == "http":
        raise ValueError(f"base_url = {url!r}: refusing to send an API key over plain http to the "
                         f"non-loopback host {parts.hostname!r}; use https (or a loopback address)")
    raise ValueError(f"base_url = {url!r}: scheme must be https (or http to a loopback host)")
