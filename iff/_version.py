"""Version of the iff package (single source, read by pyproject and provenance)."""

__version__ = "0.1.0"
