"""The one exception type for mistakes a user can make, which the CLI prints as a single line, and
the one way outside text is made safe to print."""

import re


class AdedgeError(Exception):
    """A problem the user can fix (bad path, corrupt image, mismatched bundle), not a bug."""


# control characters (terminal escape sequences, carriage returns, line breaks, C1 codes) and the
# Unicode marks that reorder or hide text: shown as escapes wherever outside text reaches a terminal
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """TEXT (from a sink endpoint, a file name, a file's content) safe to print: every control
    character escaped (\\x1b, \\n, \\u202e), so it can neither clear a terminal nor forge a line."""
    return _UNPRINTABLE.sub(lambda match: repr(match.group())[1:-1], str(text))
