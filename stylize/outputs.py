"""Writing a run's files all-or-nothing.

Every file is first written to a hidden temporary file in its destination folder; only when all of them
are complete are they renamed into place (``os.replace`` is atomic on one filesystem). A crash or Ctrl-C
while writing leaves the previous files, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
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
        umask = os.umask(0)
        os.umask(umask)
        self._mode = 0o666 & ~umask  # mkstemp makes 0600 files; give them the mode open() would


    def stage(self, final: str | Path) -> Path:
        """Return a temporary path to write ``final``'s content to."""
        final = Path(final)
        if final.is_dir():
            raise StylizeError(f"cannot write {final}: a folder of that name exists. Remove it or choose another -o.")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        except OSError as e:
            raise StylizeError(f"cannot write to {final.parent}: {e.strerror}. Choose another output with -o.") from None
        os.close(fd)
        os.chmod(tmp, self._mode)
        self._staged.append((Path(tmp), final))
        return Path(tmp)

    def commit(self) -> None:
        try:
            while self._staged:
                tmp, final = self._staged[0]
                os.replace(tmp, final)
                self._staged.pop(0)
        except OSError as e:
            self.abort()
            raise StylizeError(f"cannot write {final}: {e.strerror}.") from None

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


@contextlib.contextmanager
def interrupts_ignored():
    """Ignore Ctrl-C (and SIGTERM) while a finished result is written (a second or two, mostly matplotlib's
    import): losing a finished run to an impatient keypress is worse than a short wait."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
