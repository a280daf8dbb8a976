"""Errors raised by the storage layer; their messages are safe to show to users."""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed; the message explains why in plain words."""


class InvalidDataError(StorageError):
    """The caller passed data the database must not store (nothing was written)."""
