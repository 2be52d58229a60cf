"""The one project exception.

Library code raises :class:`StylizeError` for anything the *user* can fix (a missing file, a bad
value, an unavailable device). The CLI turns it into one line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class StylizeError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
