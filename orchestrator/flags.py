"""Command-line flags generated from the Settings model: each setting is a flag of the commands it affects, its
help the field's description, its default the one `configs/orchestrator.toml` sets (else the model's)."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from orchestrator.settings import Settings, shown_defaults

EVERY_SETTING = tuple(Settings.model_fields)
RUNTIME = ("cache_mb", "heartbeat_interval", "grace_period", "durability")
"""Settings of a process rather than a study: `worker` and `resume` take them as flags over the recorded ones."""
_METAVARS: dict[Any, str] = {"storage": "URL", "price": "COLUMN", int: "INT", float: "NUMBER", Path: "DIR"}
_defaults = functools.cache(shown_defaults)  # read once per process, for every command's flags


def with_settings(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give the command a flag per named Settings field, its help the field's description and its default the one
    `configs/orchestrator.toml` sets (else the model's). The values arrive in the command's `**flags`, None when not
    given; they are strings that `load_settings` validates, so a bad value gets the same one line as in the file."""
    defaults = _defaults()

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                   annotation=_flag(name, getattr(defaults, name))) for name in names]
        command.__signature__ = signature.replace(parameters=[*own, *added])  # what typer reads
        return command

    return decorate


def _flag(name: str, default: Any) -> Any:
    field = Settings.model_fields[name]
    flag = "--" + name.replace("_", "-")
    help = field.description + _shown(default)
    if field.annotation is bool:
        return Annotated[Optional[bool], typer.Option(f"{flag}/--no-{flag[2:]}", help=help)]
    args = typing.get_args(field.annotation)  # (int, None) for `int | None`, the values of a Literal
    if typing.get_origin(field.annotation) is typing.Literal:
        metavar = "|".join(args)
    else:
        metavar = _METAVARS.get(name) or _METAVARS[args[0] if args else field.annotation]
    return Annotated[Optional[str], typer.Option(flag, metavar=metavar, help=help)]


def _shown(default: Any) -> str:
    if default is None:
        return ""
    if isinstance(default, bool):
        return f"  [default: {'on' if default else 'off'}]"
    return f"  [default: {default:g}]" if isinstance(default, float) else f"  [default: {default}]"


def given(flags: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The validated values of the flags given on the command line."""
    return {name: getattr(settings, name) for name, value in flags.items() if value is not None}
