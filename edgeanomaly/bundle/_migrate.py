"""Schema versions: refuse newer manifests, migrate older ones step by step.

A migration turns a manifest dict of schema ``n`` into one of schema ``n + 1``; reading
chains them up to :data:`SCHEMA_VERSION`. Migrations work on plain dicts in memory (the
file on disk is not rewritten) and must not need anything beyond the manifest itself.
Schema 1 is the first published schema, so the registry is empty for now.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

from edgeanomaly.bundle._schema import SCHEMA_VERSION
from edgeanomaly.errors import BundleError

__all__ = ["MIGRATIONS", "register_migration", "check_schema_version", "migrate"]

Migration = Callable[[dict[str, Any]], dict[str, Any]]

#: from_version -> function producing a dict of ``from_version + 1``.
MIGRATIONS: dict[int, Migration] = {}


def register_migration(from_version: int) -> Callable[[Migration], Migration]:
    """Decorator registering the migration from schema ``from_version`` to ``from_version + 1``.

    >>> @register_migration(-7)
    ... def _example(d):
    ...     return {**d, "schema_version": -6}
    >>> MIGRATIONS.pop(-7) is _example
    True
    """

    def decorator(fn: Migration) -> Migration:
        if from_version in MIGRATIONS:
            raise ValueError(f"A migration from schema {from_version} is already registered")
        MIGRATIONS[from_version] = fn
        return fn

    return decorator


def check_schema_version(document: Mapping[str, Any]) -> int:
    """The ``schema_version`` of a manifest dict; newer than this edgeanomaly reads -> error."""
    if "schema_version" not in document:
        raise BundleError("Invalid manifest: missing key 'schema_version'")
    version = document["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise BundleError(f"Invalid manifest field 'schema_version': expected an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"This bundle was written by a newer edgeanomaly (schema {version}); this version reads "
            f"schema <= {SCHEMA_VERSION}. Upgrade edgeanomaly."
        )
    return version


def migrate(document: Mapping[str, Any]) -> dict[str, Any]:
    """Bring a manifest dict to :data:`SCHEMA_VERSION` (a deep copy; the input is not changed).

    Raises:
        BundleError: the schema is newer than this edgeanomaly, or no migration path exists.
    """
    version = check_schema_version(document)
    current = copy.deepcopy(dict(document))
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise BundleError(
                f"This bundle uses manifest schema {version}, which this edgeanomaly cannot read "
                f"(it reads schema {SCHEMA_VERSION} and has no migration from {version}). "
                "Re-export the bundle."
            )
        current = step(current)
        if current.get("schema_version") != version + 1:
            raise BundleError(
                f"Internal error: the migration from schema {version} returned schema_version "
                f"{current.get('schema_version')!r} instead of {version + 1}"
            )
        version += 1
    return current
