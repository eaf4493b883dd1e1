"""Command-line flags shared by run-batch and run-shard: the engine's arguments under
FastDeploy's names, generated from EngineArgs so the two never drift apart."""

import argparse
import json
import types
import typing

from pydantic import ValidationError

from worker.batch.errors import BatchRunError
from worker.contract import engine_flag
from worker.engine.engine_args import EngineArgs


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine arguments (FastDeploy names)")
    for name, info in EngineArgs.model_fields.items():
        if name == "model":
            continue
        flag = engine_flag(name)
        kind = _base_type(info.annotation)
        help_text = info.description or ""
        if kind is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        elif typing.get_origin(kind) is typing.Literal:
            group.add_argument(flag, dest=name, choices=typing.get_args(kind), default=None, help=help_text)
        else:
            group.add_argument(flag, dest=name, type=kind, default=None, help=help_text)


def _base_type(annotation):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and args:
        return args[0]
    return annotation


def engine_args(ns: argparse.Namespace, model_dir: str) -> EngineArgs:
    """EngineArgs from the flags that were given (the rest keep EngineArgs' defaults)."""
    given = {name: getattr(ns, name) for name in EngineArgs.model_fields
             if name != "model" and getattr(ns, name, None) is not None}
    try:
        return EngineArgs(model=model_dir, **given)
    except ValidationError as exc:
        raise BatchRunError(f"invalid engine arguments: {_first(exc)}") from None


def engine_fingerprint(args: EngineArgs) -> str:
    """The model and the engine flags given, as a stable string for checkpoint manifests."""
    return json.dumps(args.model_dump(exclude_unset=True), sort_keys=True)


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = "--" + "-".join(str(p) for p in err["loc"]).replace("_", "-") if err["loc"] else "arguments"
    return f"{where}: {err['msg']}"


def validated(model: type, ns: argparse.Namespace):
    """Build a pydantic flags model from the parsed namespace; a bad value names its flag."""
    try:
        return model.model_validate({k: v for k, v in vars(ns).items() if k in model.model_fields})
    except ValidationError as exc:
        raise BatchRunError(f"invalid arguments: {_first(exc)}") from None
