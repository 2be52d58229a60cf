"""A batch's ledger, ``DIR/batch.jsonl``: one JSON line per job event, appended atomically.

Events: ``started`` (a worker took the job), ``done``, ``failed`` (its one-line error), ``retried`` (the worker
died mid-job; the job goes to another), ``interrupted`` (Ctrl-C). A job's state is its latest event; a rerun
skips the jobs whose latest event is ``done`` and whose output exists. Each line is written with one ``write``
on a file opened ``O_APPEND`` and fsynced: a crash leaves whole lines (a torn last line, if the disk filled,
is skipped on reading).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import StylizeError

NAME = "batch.jsonl"
STATUSES = ("started", "done", "failed", "retried", "interrupted")


def path_in(folder: str | Path) -> Path:
    return Path(folder) / NAME


def append(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append one event (``time`` added, None values dropped); returns what was written."""
    assert record.get("status") in STATUSES, record
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **{k: v for k, v in record.items() if v is not None}}
    line = (json.dumps(row, default=str) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise StylizeError(f"cannot write the ledger {path}: {e.strerror}. Choose another -o.") from None
    return row


def read(path: Path) -> list[dict[str, Any]]:
    """Every event in order; a line that is not a whole JSON object (torn by a full disk) is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StylizeError(f"cannot read the ledger {path}: {e.strerror}.") from None
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "id" in row and row.get("status") in STATUSES:
            rows.append(row)
    return rows


def latest(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each job id's latest event."""
    return {row["id"]: row for row in rows}
