"""The one exception type that means "the input is wrong", beside ValueError and OSError.

The tools print a `UserError` as one line and exit 2 (see tools/common.py). Raise it
for a user-fixable condition that is not a bad value (ValueError) or a missing file
(FileNotFoundError...), e.g. a --strict build that rejected files. RuntimeError is
not one: it stays a bug and keeps its traceback.
"""


class UserError(Exception):
    """The request cannot be done as given; the message says what to change."""
