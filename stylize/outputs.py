"""Writing a run's files all-or-nothing.

Every file is first written to a hidden temporary file in its destination folder; only when all of them
are complete are they renamed into place (``os.replace`` is atomic on one filesystem). A crash or Ctrl-C
while writing leaves the previous files, never a half-written one.

A write that fails (a full disk: ``ENOSPC``) is one :class:`StylizeError` line saying what was and was not
written. With ``keep_written`` the files completed before the failure are kept (a run's image before its logs).
The temporary names carry the writer's process id (``.NAME.<pid>.<random>.tmp``): one a killed process left
behind (SIGKILL runs no cleanup) is removed by the next writer of the same file, and a live writer's is not.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from .errors import StylizeError


class AtomicFiles:
    """Stage files, then commit them all at once.

    >>> with AtomicFiles() as files:
    ...     image.save(files.stage("out.png"), format="PNG")
    ...     files.stage("out.csv").write_text(csv)
    """

    def __init__(self, keep_written: Iterable[str | Path] | None = None) -> None:
        """``keep_written``: every file this block will write, in order. Given, a failed write keeps the files
        completed before it (and the error names the ones not written); otherwise nothing is written."""
        self._staged: list[tuple[Path, Path]] = []
        self._current: Path | None = None  # the file being written: staging one means the previous one is done
        self._planned = None if keep_written is None else [Path(p) for p in keep_written]
        umask = os.umask(0)
        os.umask(umask)
        self._mode = 0o666 & ~umask  # mkstemp makes 0600 files; give them the mode open() would

    def stage(self, final: str | Path) -> Path:
        """Return a temporary path to write ``final``'s content to."""
        final = Path(final)
        self._current = final
        if is_dir(final):
            raise StylizeError(f"cannot write {final}: a folder of that name exists. Remove it or choose another -o.")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(final)
            fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
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
            return
        failed = self._current
        done = [(t, f) for t, f in self._staged if f != failed]
        if self._planned is None or not issubclass(exc_type, Exception) or not done:
            self.abort()
            if isinstance(exc, OSError):
                raise StylizeError(f"cannot write {failed}: {_reason(exc)}; nothing was written. {_fix(exc)}") from None
            return
        # Keep what was complete (a full disk should not cost the finished image), drop the rest.
        for tmp, final in self._staged:
            if final == failed:
                tmp.unlink(missing_ok=True)
        written = [f for _, f in done]
        self._staged = done
        self.commit()
        missing = [str(p) for p in self._planned if p not in written] or [str(failed)]
        if isinstance(exc, OSError):
            raise StylizeError(f"wrote {', '.join(map(str, written))}; could not write {', '.join(missing)}: "
                               f"{_reason(exc)}. {_fix(exc)}") from None
        if isinstance(exc, StylizeError):
            raise StylizeError(f"wrote {', '.join(map(str, written))}; not {', '.join(missing)}: {exc}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _fix(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "Free some disk space, or write elsewhere with -o."
    return "Check the folder, or write elsewhere with -o."


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, with a name too long for the filesystem (ENAMETOOLONG) as one StylizeError line."""
    try:
        return path.is_dir()
    except OSError as e:
        raise StylizeError(f"cannot write {_short(path)}: {_reason(e)}. Choose a shorter name with -o.") from None


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-30:]}"


def check_name_lengths(paths: Iterable[Path]) -> None:
    """Refuse, before any work, a file name longer than the filesystem takes (``<stem>.losses.csv`` can be
    too long where ``<stem>.png`` is not)."""
    for path in paths:
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            limit = os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            limit = 255
        need = len(os.fsencode(path.name)) + 24  # + the temporary's ".", ".<pid>.<random>.tmp"
        if need > limit:
            raise StylizeError(f"output name too long: {_short(path)} is {len(os.fsencode(path.name))} bytes, and "
                               f"with the temporary file's {need}; this filesystem allows {limit}. "
                               "Choose a shorter name with -o.")


_TEMPORARY = re.compile(r"\.(\d+)\.[^.]+\.tmp$")


def remove_stale_temporaries(final: Path) -> None:
    """Delete ``final``'s temporaries left by processes that are gone (killed with SIGKILL mid-write)."""
    prefix = f".{final.name}."
    try:
        names = [n for n in os.listdir(final.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        found = _TEMPORARY.fullmatch(name[len(prefix) - 1:])
        if found and not _alive(int(found.group(1))):
            (final.parent / name).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's live process, or not knowable: leave its file alone
    return True


def step_path(output: Path, step: int) -> Path:
    """``--save-every``'s image of step ``step``: ``<stem>.stepNNNN<suffix>``."""
    return Path(f"{output.with_suffix('')}.step{step:04d}{output.suffix}")


def check_step_files(output: Path, save_every: int, inputs: Iterable[Path]) -> None:
    """Refuse a run whose ``--save-every`` images could overwrite an input: an input that is (by name, or by
    link: ``samefile``) ``<stem>.stepNNNN<suffix>`` with NNNN a multiple of ``save_every``."""
    if not save_every:
        return
    pattern = re.compile(re.escape(output.with_suffix("").name) + r"\.step(\d{4,})" + re.escape(output.suffix))
    try:
        candidates = [output.parent / n for n in os.listdir(output.parent) if pattern.fullmatch(n)]
    except OSError:  # the folder does not exist yet: nothing there to overwrite
        return
    for path in candidates:
        step = int(pattern.fullmatch(path.name).group(1))
        if step == 0 or step % save_every or path.name != step_path(output, step).name:
            continue
        for given in inputs:
            if given.exists() and path.samefile(given):
                raise StylizeError(f"--save-every {save_every} would write {path} over the input {given}; refusing. "
                                   "Choose another -o, or rename the input.")


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
