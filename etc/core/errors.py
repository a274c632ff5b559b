"""The one exception type for mistakes a user can fix (bad input, missing data, bad config).

The CLI prints it as a one-line message and exits with code 2; anything else is a bug and
keeps its traceback.
"""


class EtcError(Exception):
    """A problem the user can fix; the message names the file, key or value and the fix."""
