"""Delivery knobs read from the environment, for operators and tests.

`CAREERS_EDGE_BACKOFF_CAP` (seconds) caps the wait between delivery attempts;
`CAREERS_EDGE_LEASE_SECONDS` is how long a dead process's claim on a delivery blocks
it. Neither belongs in the rules file: they tune the machinery, not the rules.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

from proxy.config.model import Sink
from proxy.conversions.backoff import DEFAULT_POLICY

log = logging.getLogger("careers_edge.delivery")

BACKOFF_CAP_ENV = "CAREERS_EDGE_BACKOFF_CAP"
LEASE_ENV = "CAREERS_EDGE_LEASE_SECONDS"


def _seconds(env: Mapping[str, str], name: str) -> float | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        log.warning("%s=%r is not a positive number of seconds; ignored", name, text)
        return None
    return value


def dispatcher_options(sinks: Mapping[str, Sink],
                       env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for `Dispatcher` from the environment (empty when unset)."""
    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    cap = _seconds(env, BACKOFF_CAP_ENV)
    if cap is not None:
        options["policy"] = dataclasses.replace(DEFAULT_POLICY, cap=cap)
    lease = _seconds(env, LEASE_ENV)
    if lease is not None:
        longest = max((s.timeout for s in sinks.values()), default=0.0)
        if lease <= longest:
            log.warning("%s=%s is not longer than the slowest sink's timeout (%s s): a slow "
                        "delivery may be sent twice", LEASE_ENV, lease, longest)
        options["lease_seconds"] = lease
    return options
