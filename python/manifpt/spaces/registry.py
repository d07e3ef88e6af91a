"""The registry of spaces: name -> Space (embedder factory, whether it needs weights, help text)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .base import Embedder


@dataclass(frozen=True)
class Space:
    name: str
    help: str
    factory: Callable[..., Embedder]  # factory(weights=..., device=..., batch_size=...) -> Embedder
    needs_weights: bool = False

    def embedder(self, *, weights=None, device="cpu", batch_size: int = 64) -> Embedder:
        if weights is not None and not self.needs_weights:
            raise ValueError(f"space {self.name!r} takes no weights file, got --weights {weights}")
        return self.factory(weights=weights, device=device, batch_size=batch_size)


_REGISTRY: dict[str, Space] = {}


def register(space: Space) -> Space:
    if space.name in _REGISTRY:
        raise ValueError(f"space {space.name!r} is registered twice")
    _REGISTRY[space.name] = space
    return space


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_space(name: str) -> Space:
    if name not in _REGISTRY:
        raise ValueError(f"unknown space {name!r}: choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def get_embedder(name: str, *, weights=None, device="cpu", batch_size: int = 64) -> Embedder:
    """The embedder of a space by name (the registry's entry, built)."""
    return get_space(name).embedder(weights=weights, device=device, batch_size=batch_size)


def help_text() -> str:
    return "; ".join(f"{s.name}: {s.help}" for s in _REGISTRY.values())
