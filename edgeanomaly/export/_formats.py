"""Export targets, read from the format rows of :mod:`edgeanomaly.registry`.

The registry's table drives argument checks, export dispatch (each row's writer), the
artifact names and paths in a bundle, backend choice at runtime and the benchmark loop.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from edgeanomaly import registry
from edgeanomaly._optional import check_choice
from edgeanomaly.errors import ConfigError
from edgeanomaly.registry import PRECISIONS, FormatSpec, get_format

__all__ = ["ExportFormat", "FORMATS", "PRECISIONS", "artifact_name", "artifact_path", "check_targets"]

#: An export target is a registry format row.
ExportFormat = FormatSpec


class _Formats(Mapping[str, FormatSpec]):
    """A live, read-only view of the registry's format rows by name."""

    def __getitem__(self, name: str) -> FormatSpec:
        if name not in registry.format_names():
            raise KeyError(name)
        return get_format(name)

    def __iter__(self) -> Iterator[str]:
        return iter(registry.format_names())

    def __len__(self) -> int:
        return len(registry.format_names())


FORMATS: Mapping[str, FormatSpec] = _Formats()


def artifact_name(fmt: str, precision: str) -> str:
    """Bundle artifact name, e.g. ``openvino-int8``."""
    return get_format(fmt).artifact_name(precision)


def artifact_path(fmt: str, precision: str) -> str:
    """Relative path of the loadable file inside a bundle."""
    return get_format(fmt).artifact_path(precision)


def check_targets(formats: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """Validate ``--format``/``--precision`` and return the (format, precision) pairs to write.

    A precision a format does not offer is skipped for that format, but each asked
    precision must be offered by at least one asked format.
    """
    known = registry.format_names()
    if not formats:
        raise ConfigError(f"Expected at least one --format ({', '.join(known)})")
    if not precisions:
        raise ConfigError(f"Expected at least one --precision ({', '.join(PRECISIONS)})")
    for f in formats:
        check_choice("format", f, known)
    for p in precisions:
        check_choice("precision", p, PRECISIONS)
    pairs = [(f, p) for f in formats for p in precisions if p in get_format(f).precisions]
    for p in precisions:
        if not any(pp == p for _, pp in pairs):
            offered = ", ".join(f"{f}: {'/'.join(get_format(f).precisions)}" for f in formats)
            raise ConfigError(f"No asked format offers precision {p!r} ({offered})")
    # fp32 first: it is the reference every other artifact is compared with.
    return sorted(set(pairs), key=lambda fp: (PRECISIONS.index(fp[1]), known.index(fp[0])))
