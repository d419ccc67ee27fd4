"""Installed package versions, for the model/version strings every judgment records."""

from __future__ import annotations

from importlib import metadata


def package_version(dist: str, default: str | None = "?") -> str | None:
    """The installed version of distribution ``dist``, else ``default``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return default
