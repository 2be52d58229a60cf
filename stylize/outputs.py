"""Writing a run's files all-or-nothing.

Every file is first written to a hidden temporary file in its destination folder; only when all of them
are complete are they renamed into place (``os.replace`` is atomic on one filesystem). A crash or Ctrl-C
while writing leaves the previous files, never a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import StylizeError


class AtomicFiles:
    """Stage files, then commit them all at once.

    >>> with AtomicFiles() as files:
    ...     image.save(files.stage("out.png"), format="PNG")
    ...     files.stage("out.csv").write_text(csv)
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def stage(self, final: str | Path) -> Path:
        """Return a temporary path to write ``final``'s content to."""
        final = Path(final)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        except OSError as e:
            raise StylizeError(f"cannot write to {final.parent}: {e.strerror}. Choose another output with -o.") from None
        os.close(fd)
        self._staged.append((Path(tmp), final))
        return Path(tmp)

    def commit(self) -> None:
        for tmp, final in self._staged:
            os.replace(tmp, final)
        self._staged.clear()

    def abort(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self) -> AtomicFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
