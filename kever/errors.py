"""Errors a user can cause or fix. The CLI prints them as one line and exits non-zero.

Anything else that escapes is a bug, and is reported as such.
"""

from __future__ import annotations


class KeverError(Exception):
    """Base class: ``str(err)`` says what was wrong; ``hint`` says what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(KeverError):
    """The user's input (an image, a label list, a query) is unusable."""


class ConfigError(KeverError):
    """A preset, config file or curated data file is missing or invalid."""


class ModelUnavailable(KeverError):
    """A model or optional package needed for this path cannot be loaded here."""

    exit_code = 3


class KnowledgeError(KeverError):
    """The knowledge base or its index is missing, corrupt or was asked something invalid."""


def missing_package(package: str, extra: str | None = None) -> ModelUnavailable:
    hint = f"pip install 'kever[{extra}]'" if extra else f"pip install {package}"
    return ModelUnavailable(f"optional package '{package}' is not installed", hint)
