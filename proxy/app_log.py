"""The proxy's own log lines (not the access log): one line per record, redacted.

`[log] format = "text"`: `TIME LEVEL LOGGER: message`, a traceback folded into the
same line with its newlines escaped (`\\n`); `"json"`: one JSON object per line with
`time`, `level`, `logger`, `message` and, for an exception, `exc`. Every record
passes a `RedactFilter` first (`[log] redact`), so a click id, e-mail address or
token in a message or a traceback never reaches the log.

The level comes from `--log-level`, else `CAREERS_EDGE_LOG_LEVEL`, else `[log] level`
(`resolve_level`), in any letter case; an unknown name is a `LevelError` naming the
place it came from and the names allowed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Final, TextIO

import orjson

from proxy.redact import NO_REDACTION, Redactor

ENV_LOG_LEVEL: Final = "CAREERS_EDGE_LOG_LEVEL"
LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                 "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}
LEVEL_NAMES: Final = "debug, info, warning, error, critical"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LevelError(ValueError):
    pass


def level_problem(name: str) -> str | None:
    """Why `name` is not a log level (for the rules file's checks), or None."""
    if name.strip().lower() in LEVELS:
        return None
    return f"{name!r} is not a log level; one of: {LEVEL_NAMES} (any letter case)"


def parse_level(name: str, origin: str = "--log-level") -> int:
    problem = level_problem(name)
    if problem:
        raise LevelError(f"{origin}: {problem}")
    return LEVELS[name.strip().lower()]


def resolve_level(flag: str | None, env: Mapping[str, str], file_level: str = "info") -> int:
    """The flag wins over the environment, which wins over the rules file."""
    if flag is not None:
        return parse_level(flag, "--log-level")
    if env.get(ENV_LOG_LEVEL):
        return parse_level(env[ENV_LOG_LEVEL], ENV_LOG_LEVEL)
    return parse_level(file_level, "[log] level")


_last_second: list = [-1, ""]      # the last second formatted: most lines share it


def iso_time(t: float) -> str:
    """ISO 8601 in UTC with milliseconds: 2026-12-03T08:24:38.123Z."""
    second = int(t)
    if second != _last_second[0]:
        _last_second[:] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_last_second[1]}.{int((t - second) * 1000):03d}Z"


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


class RedactFilter(logging.Filter):
    """Redacts each record's message and traceback in place (a handler filter, so
    records of every logger, aiohttp's included, pass through it)."""

    def __init__(self, redactor: Redactor = NO_REDACTION) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        if not redactor.enabled:
            return True
        record.msg, record.args = redactor.text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return _one_line(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": iso_time(record.created), "level": record.levelname.lower(),
               "logger": record.name, "message": record.getMessage()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out).decode()


def configure_logging(level: int | str = logging.INFO, fmt: str = "text",
                      redactor: Redactor = NO_REDACTION, stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one that writes lines to stderr."""
    if isinstance(level, str):
        level = parse_level(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactFilter(redactor))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)


def use_redactor(redactor: Redactor) -> None:
    """Redact app logs with `redactor` from now on (the rules were reloaded)."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactFilter):
                f.redactor = redactor
