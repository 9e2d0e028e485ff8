"""Rules reload on SIGHUP or when the file changes on disk.

A new file is compiled completely before it replaces the old runtime; an invalid
one is refused with every error logged and counted, and the old rules stay in
force. Settings bound at start (listen, upstream, state, workers) need a restart:
a change to them is reported and not applied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxy.app_log import use_redactor
from proxy.config.env import Overrides
from proxy.config.errors import ConfigErrors, format_errors
from proxy.config.load import load_config
from proxy.runtime import compile_runtime

if TYPE_CHECKING:
    from proxy.edge import Edge

log = logging.getLogger("careers_edge.reload")

BOUND_AT_START = ("listen", "upstream", "state", "workers", "header_timeout", "keepalive_timeout")
WATCH_INTERVAL = 1.0    # seconds between looks at the file
SETTLE = 0.2            # a changed file must read the same after this long (no half-writes)


def _fingerprint(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


class RulesReloader:
    def __init__(self, edge: Edge, path: Path, secret: bytes, dispatcher: Any = None,
                 overrides: Overrides | None = None) -> None:
        self.overrides = overrides
        self.edge = edge
        self.path = Path(path)
        self.secret = secret
        self.dispatcher = dispatcher
        self._seen = _fingerprint(self.path)

    def reload(self, reason: str = "SIGHUP") -> bool:
        """Load, check and swap in the rules file; True when the new rules serve."""
        edge = self.edge
        old = edge.runtime.config
        # What is loaded now is what the watcher has seen: no second reload of it.
        self._seen = _fingerprint(self.path)
        try:
            new = load_config(self.path, overrides=self.overrides)
        except ConfigErrors as exc:
            log.error("rules reload (%s) refused, old rules stay in force:\n%s",
                      reason, format_errors(exc.errors))
            edge.metrics.rules_reload.labels("invalid").inc()
            return False
        except Exception:
            log.exception("rules reload failed, old rules stay in force")
            edge.metrics.rules_reload.labels("error").inc()
            return False
        changed = [k for k in BOUND_AT_START
                   if getattr(new.proxy, k) != getattr(old.proxy, k)
                   and getattr(new.proxy, k) is not None]
        if changed:
            log.warning("rules reload: %s changed; that takes a restart, keeping the running "
                        "value", ", ".join(changed))
        proxy = dataclasses.replace(new.proxy, **{k: getattr(old.proxy, k)
                                                  for k in BOUND_AT_START})
        new = dataclasses.replace(new, proxy=proxy)
        try:
            runtime = compile_runtime(new, self.secret)
        except Exception:
            log.exception("rules reload could not compile, old rules stay in force")
            edge.metrics.rules_reload.labels("error").inc()
            return False
        edge.runtime = runtime
        edge.upstreams.sync(runtime.routes.origins)
        use_redactor(runtime.redactor)
        if new.log != old.log:
            log.warning("rules reload: [log] changed; formats and level take a restart, "
                        "redaction follows the new rules now")
        if self.dispatcher is not None:
            self.dispatcher.reconfigure(new.sinks)
        edge.metrics.rules_reload.labels("ok").inc()
        log.info("rules reloaded (%s) from %s: %d rules, %d pixels, %d sinks", reason,
                 self.path, len(new.rules), len(new.pixels), len(new.sinks))
        return True

    async def watch(self, interval: float = WATCH_INTERVAL) -> None:
        """Reload when the file's content changes (editors replace files: compare content)."""
        while True:
            await asyncio.sleep(interval)
            seen = await asyncio.to_thread(_fingerprint, self.path)
            if seen is None or seen == self._seen:
                continue
            await asyncio.sleep(SETTLE)
            if await asyncio.to_thread(_fingerprint, self.path) == seen:
                self.reload("file changed")
