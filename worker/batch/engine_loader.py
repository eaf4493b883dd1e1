"""Resolve the model (local dir or s3:// prefix) and build the engine, lazily: paddle is
imported only here, only when there is work left to do."""

import argparse
from collections.abc import Callable

from worker.batch.errors import BatchRunError
from worker.batch.flags import engine_args
from worker.batch.pipeline import Engine
from worker.logs import get_logger
from worker.storage import StorageError
from worker.storage.sync import resolve_model_dir

log = get_logger(__name__)


def engine_loader(ns: argparse.Namespace, model: str, cache_dir: str | None) -> Callable[[], Engine]:
    engine_args(ns, model)  # fail fast on bad engine flags, before any work

    def load() -> Engine:
        try:
            model_dir = resolve_model_dir(model, cache_dir)
        except StorageError as exc:
            raise BatchRunError(f"model not loadable: {exc}") from None
        args = engine_args(ns, model_dir)
        from worker.engine.llm_engine import LLMEngine

        try:
            return LLMEngine(args)
        except (OSError, ValueError, KeyError) as exc:
            raise BatchRunError(f"model not loadable from {model}: {type(exc).__name__}: {exc}") from None

    return load
