"""The old home of `proxy.hosts`, for the modules that still import it from here
(pipeline.py, http/headers.py); delete once they import `proxy.hosts`."""

from proxy.hosts import BAD_HOST, MISDIRECTED, HostPolicy, host_entry_problem, split_host

__all__ = ["BAD_HOST", "MISDIRECTED", "HostPolicy", "host_entry_problem", "split_host"]
