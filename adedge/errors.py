"""The one exception type for mistakes a user can make; the CLI prints it as a single line."""


class AdedgeError(Exception):
    """A problem the user can fix (bad path, corrupt image, mismatched bundle), not a bug."""
