"""Logging for long-running processes: readable lines by default, JSON lines on request."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any structured extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, sort_keys=True)


class TextFormatter(logging.Formatter):
    def __init__(self, name: str | None) -> None:
        prefix = f"[{name}] " if name else ""
        super().__init__(f"%(asctime)s {prefix}%(levelname)s %(message)s", "%H:%M:%S")
        self.converter = time.gmtime


def setup_logging(fmt: str = "text", *, name: str | None = None, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "web3", "filelock", "httpx", "transformers", "peft"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
