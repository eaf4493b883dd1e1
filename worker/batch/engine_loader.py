"""Resolve the model (local dir or s3:// prefix) and build the engine, lazily: paddle is
imported only here, only when there is work left to do."""

from collections.abc import Callable

from worker.batch.errors import BatchRunError
from worker.batch.pipeline import Engine
from worker.engine.engine_args import EngineArgs
from worker.logs import get_logger
from worker.storage import StorageError
from worker.storage.sync import resolve_model_dir

log = get_logger(__name__)


def engine_loader(args: EngineArgs, cache_dir: str | None) -> Callable[[], Engine]:
    """args.model may be an s3:// prefix: it is fetched into cache_dir when the engine loads."""

    def load() -> Engine:
        try:
            model_dir = resolve_model_dir(args.model, cache_dir)
        except StorageError as exc:
            raise BatchRunError(f"model not loadable: {exc}") from None
        from worker.engine.llm_engine import LLMEngine

        try:
            return LLMEngine(args.model_copy(update={"model": model_dir}))
        except (OSError, ValueError, KeyError) as exc:
            raise BatchRunError(f"model not loadable from {args.model}: {type(exc).__name__}: {exc}") from None

    return load
