"""Installed distributions' metadata, read before a seal and found from memory after it.

``importlib.metadata`` finds a distribution by listing every folder of
``sys.path``, which a sealed service cannot. :class:`HeldDistributions` reads
what callers ask of a distribution (its metadata's header: name, version,
requirements; its entry points and top-level names) while files can be read,
and answers ``importlib.metadata``'s finder protocol from memory; put first
on ``sys.meta_path``, it answers before the path finder looks (see
:mod:`riad.targets.sandbox.warmup`). Imported only by a service that imported
``importlib.metadata`` at start-up.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import os
import re
from collections.abc import Iterator
from pathlib import Path

__all__ = ["HeldDistributions"]


class _HeldDistribution(importlib.metadata.Distribution):
    """One installed distribution's metadata files, as read before the seal."""

    def __init__(self, texts: dict[str, str], folder: str) -> None:
        self._texts = texts
        self._folder = folder

    def read_text(self, filename: str) -> str | None:
        return self._texts.get(filename)

    def locate_file(self, path: str | os.PathLike[str]) -> Path:
        return Path(self._folder, path)


class HeldDistributions(importlib.abc.MetaPathFinder):
    """The distributions installed where the service imports from, found from memory
    (a finder by ``importlib.metadata``'s protocol: ``find_distributions``)."""

    _HELD = ("METADATA", "PKG-INFO", "entry_points.txt", "top_level.txt")

    def __init__(self) -> None:
        self.by_name: dict[str, _HeldDistribution] = {}
        for found in importlib.metadata.distributions():
            texts = {}
            for filename in self._HELD:
                text = found.read_text(filename)
                if text is not None:
                    # the header: name, version, requirements; not the long description
                    held = filename in ("METADATA", "PKG-INFO")
                    texts[filename] = text.partition("\n\n")[0] + "\n" if held else text
            name = found.metadata["Name"] if texts else None
            if name:
                folder = str(getattr(found, "_path", ""))
                self.by_name.setdefault(_normalized(name), _HeldDistribution(texts, folder))

    def find_distributions(
        self, context: importlib.metadata.DistributionFinder.Context | None = None
    ) -> Iterator[importlib.metadata.Distribution]:
        name = context.name if context is not None else None
        if name is None:
            return iter(list(self.by_name.values()))
        held = self.by_name.get(_normalized(name))
        return iter([held] if held is not None else [])


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
