"""Export recipes shipped with the package: ``export --recipe patchcore`` works from any folder.

The ``*.toml`` files here are copies of the repository's top-level ``export/*.toml`` (where
users read them next to ``BUNDLE.md``); a test keeps the two byte-identical. This module is
torch-free so that ``edgeanomaly export --list-recipes`` runs on any install.

>>> sorted(list_recipes())[:2]
['dfkde', 'dfm']
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from edgeanomaly.errors import ConfigError

__all__ = ["RECIPE_DIR", "list_recipes", "resolve_recipe"]

#: Folder of the packaged recipes (inside the installed package).
RECIPE_DIR = Path(__file__).resolve().parent


def list_recipes() -> dict[str, str]:
    """``{name: first comment line}`` of every packaged recipe, sorted by name."""
    out = {}
    for path in sorted(RECIPE_DIR.glob("*.toml"), key=lambda p: p.stem):
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        out[path.stem] = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
    return out


def resolve_recipe(recipe: str | os.PathLike[str]) -> Path:
    """A recipe file: an existing path as given, else a packaged recipe by name (``patchcore``).

    Raises:
        ConfigError: neither a file nor a packaged recipe; the message lists the names.
    """
    path = Path(recipe)
    if path.is_file():
        return path
    name = str(recipe).removesuffix(".toml")
    packaged = RECIPE_DIR / f"{name}.toml"
    if "/" not in name and os.sep not in name and packaged.is_file():
        return packaged
    names = list(list_recipes())
    close = difflib.get_close_matches(path.stem, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"Recipe not found: {recipe} is neither a file nor a packaged recipe ({', '.join(names)}).{hint}")
