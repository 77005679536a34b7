"""One error hierarchy, so callers can catch everything we raise with a single type."""


class CrystalReasonerError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(CrystalReasonerError, ValueError):
    """A configuration file or value is wrong (unknown key, bad type, missing preset)."""


class CodecError(CrystalReasonerError, ValueError):
    """Text that should hold a crystal structure block cannot be decoded.

    The message names the line and the field that are wrong.
    """


class DataError(CrystalReasonerError):
    """A dataset cannot be loaded at all (missing file, unknown name, wrong columns)."""


class ArtifactNotFoundError(CrystalReasonerError, KeyError):
    """No artifact with the requested id exists in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreConfigError(ConfigError):
    """A store specification file is invalid or needs an unset environment variable."""
