"""Daily limits of uploads per user; the checks and saving of the files are ``aidsearch.incoming``'s."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("aidsearch")


class UploadLedger:
    """Files and bytes each user uploaded today (UTC), kept in ``uploads-today.json`` beside the index so that the
    daily limits hold across restarts (and in memory when that file cannot be written, e.g. on a full disk);
    callers serialize ``charge``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.memory: dict[str, Any] = {}

    def _today(self) -> dict[str, list[int]]:
        day = datetime.now(timezone.utc).date().isoformat()
        data = self.memory
        if data.get("day") != day:  # first upload of the day in this process: what earlier runs counted
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        users = data.get("users") if isinstance(data, dict) and data.get("day") == day else None
        return users if isinstance(users, dict) else {}

    def charge(self, user: str, size: int, max_files: int, max_bytes: int) -> bool:
        """Count one more file of ``size`` bytes for ``user`` if today's limits allow it."""
        users = self._today()
        files, used = users.get(user, [0, 0])
        if files + 1 > max_files or used + size > max_bytes:
            return False
        users[user] = [files + 1, used + size]
        self.memory = {"day": datetime.now(timezone.utc).date().isoformat(), "users": users}
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self.memory), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("cannot save the upload counts in %s: %s", self.path.name, exc.strerror or exc)
        return True
