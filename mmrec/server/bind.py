"""Where the server may listen: loopback freely, anything else only behind an API key."""

from __future__ import annotations

import ipaddress

from mmrec.errors import InvalidInputError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the usual names for them; ``0.0.0.0`` is every interface."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to expose the library (and its write routes) beyond this machine without a key."""
    if not is_loopback(host) and not api_key:
        raise InvalidInputError(
            "serve",
            "--host",
            f"{host!r} is reachable from other machines; set --api-key KEY (or $MMREC_API_KEY) "
            "to serve there, or keep the default 127.0.0.1",
        )
