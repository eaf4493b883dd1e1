"""Backend registry: a name (or the platform's default) -> the two seam functions.

Backends are imported lazily so a GPU-only module never loads on CPU; the default on every
platform is a backend that runs there (GPU backends must be asked for by name).
"""

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from worker.logs import get_logger

log = get_logger(__name__)


class PlatformLike(Protocol):
    device: str


@dataclass(frozen=True)
class AttentionBackend:
    name: str
    write_kv: Callable[..., None]
    paged_attention: Callable[..., Any]


class UnknownBackendError(ValueError):
    """The attention backend name is not registered, or cannot run on this platform."""


# name -> (module, devices it runs on)
_BACKENDS: dict[str, tuple[str, frozenset[str]]] = {
    "reference": ("kernels.reference", frozenset({"cpu", "gpu"})),
    "cpu": ("kernels.cpu.backend", frozenset({"cpu"})),
}
# The default's fallback is `reference` when it cannot build here (kernels.cpu.build).
_DEFAULT_BY_DEVICE = {"cpu": "cpu", "gpu": "reference"}


def list_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str | None, platform: PlatformLike) -> AttentionBackend:
    """Resolve `name` (None or "auto": the platform's default) to a loaded backend."""
    if name in (None, "auto"):
        try:
            return get_backend(_DEFAULT_BY_DEVICE[platform.device], platform)
        except RuntimeError as exc:  # kernels.cpu.build.KernelBuildError: it cannot build here
            log.warning("attention backend unavailable; using reference",
                        backend=_DEFAULT_BY_DEVICE[platform.device], error=str(exc))
            return get_backend("reference", platform)
    chosen = name
    if chosen not in _BACKENDS:
        raise UnknownBackendError(
            f"attention backend {chosen!r} is unknown; registered: {', '.join(list_backends())}"
        )
    module_name, devices = _BACKENDS[chosen]
    if platform.device not in devices:
        raise UnknownBackendError(
            f"attention backend {chosen!r} does not run on {platform.device!r} "
            f"(it runs on: {', '.join(sorted(devices))})"
        )
    module = importlib.import_module(module_name)
    return AttentionBackend(chosen, module.write_kv, module.paged_attention)
