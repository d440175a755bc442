"""The one exception type users of the library see."""


class LcodecError(Exception):
    """Any failure caused by the input or the environment, with a one-line message."""


class LicError(LcodecError):
    """A `.lic` byte stream is malformed, truncated, corrupted or of an unknown version."""
