"""Which browser pages may open a websocket: the rule of the handshake's Origin check.

A browser sends ``Origin`` on every websocket handshake and lets any page open a socket
to any host, so without this check a page on another site could talk to the server with
whatever credentials it holds. Programs that are not browsers send no Origin and are not
concerned: they authenticate with the digest alone.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

#: In ``allowed_origins``: every origin is allowed (a development setting).
ANY_ORIGIN = "*"


def normalized_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None when the
    text is not an http(s) origin (``null``, a path, a bad port)."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    default = 80 if parts.scheme == "http" else 443
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def own_origins(host_header: str | None, http_port: int) -> set[str]:
    """The origins of this server's own page: the host the client reached the websocket
    by (its ``Host`` header), on the HTTP port, over http or https.

    Only for an IP address or ``localhost``: a page under a domain name could be an
    attacker's whose name was pointed at this machine after it loaded (DNS rebinding), and
    it would name the same host. Pages under a name are admitted by the allow-list only.
    """
    if not host_header or not http_port:
        return set()
    try:
        hostname = urlsplit(f"//{host_header.strip().lower()}").hostname
    except ValueError:
        return set()
    if not hostname or not _is_address(hostname):
        return set()
    host = f"[{hostname}]" if ":" in hostname else hostname
    found = {normalized_origin(f"{scheme}://{host}:{http_port}") for scheme in ("http", "https")}
    return {origin for origin in found if origin is not None}


def _is_address(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def origin_allowed(
    origin: str | None, host_header: str | None, http_port: int, allowed: tuple[str, ...]
) -> bool:
    """Whether a handshake with this ``Origin`` may go on: no Origin (not a browser), the
    server's own page, or an origin of the allow-list (``"*"``: any)."""
    if origin is None:
        return True
    if ANY_ORIGIN in allowed:
        return True
    wanted = normalized_origin(origin)
    if wanted is None:
        return False
    listed = {normalized_origin(entry) for entry in allowed}
    return wanted in listed or wanted in own_origins(host_header, http_port)
