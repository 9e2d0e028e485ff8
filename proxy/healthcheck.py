"""`careers-edge healthcheck -c RULES`: is the proxy on this host serving? Exit 0 or 1.

For a container's exec-form HEALTHCHECK and similar probes, without curl in the
image: it reads the rules file (with the same CAREERS_EDGE_* overrides as `run`) and
GETs `{prefix}/healthz` on the admin listener (`[admin] listen`), or on the public
one when the admin listener is off. A wildcard address (0.0.0.0, [::]) is asked on
loopback.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from proxy.config.model import Config
from proxy.config.schema import parse_listen

_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def health_listen(config: Config) -> str:
    """The address of the listener to ask: the admin one, the public one when it is off."""
    return config.admin.listen or config.proxy.listen


def health_url(config: Config) -> str:
    host, port = parse_listen(health_listen(config))
    host = _LOOPBACK.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{config.proxy.prefix}/healthz"


def check(url: str, timeout: float) -> str | None:
    """None when `url` answers 200; else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:   # noqa: S310 - http only
            return None if r.status == 200 else f"{url}: HTTP {r.status}"
    except urllib.error.HTTPError as e:
        return f"{url}: HTTP {e.code}"
    except (OSError, ValueError) as e:
        return f"{url}: {getattr(e, 'reason', e)}"


def healthcheck(config: Config, timeout: float) -> int:
    problem = check(health_url(config), timeout)
    if problem:
        print(f"careers-edge healthcheck: unhealthy: {problem}")
        return 1
    return 0
