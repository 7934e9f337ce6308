"""Check hl-train's config against what its targets take, before anything is built.

Every config node with a ``_target_`` is checked against the signature of that target:
a key it does not take is named with the keys it does (and the closest one), and a value
of the wrong type for a typed parameter (``int``, ``float``, ``bool``, ``str``, lists of
them, ``Literal`` choices, and those or None) is refused by OmegaConf's own validation,
whose ``full_key`` names it. Errors are :class:`ConfigError`, whose message starts with
the full config key (``config key trainer.max_epochs: ...``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Union

from hydra.errors import InstantiationException
from hydra.utils import get_object
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import Container, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hl_lightning.data.io import BadDataError
from hl_lightning.hierarchy import HierarchyError
from hl_lightning.lightning.backbones import BackboneConfigError

__all__ = [
    "ConfigError",
    "building",
    "check_keys",
    "check_node",
    "check_values",
    "locate_target",
    "parameter_hints",
]

_SCALARS = (int, float, bool, str)
_SPECIAL = ("_target_", "_recursive_", "_convert_", "_partial_", "_args_")


class ConfigError(ValueError):
    """A config value that cannot be used; the message names its full key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key}: {problem}")
        self.key = key


def _join(key: str, name: object) -> str:
    """Return the full key of ``name`` under ``key`` (``""``: the top level)."""
    return f"{key}.{name}" if key else str(name)


def locate_target(key: str, path: str) -> Callable[..., Any]:
    """Return the object ``path`` (``package.module.Name``) names, or raise a ConfigError.

    Example:
        >>> locate_target("trainer", "lightning.Trainer").__name__
        'Trainer'
        >>> try:
        ...     locate_target("backbone", "mynets.MyNet")
        ... except ConfigError as error:
        ...     print(str(error)[:73])
        config key backbone._target_: cannot import mynets.MyNet (No module named
    """
    try:
        target = get_object(path)
    except Exception as error:  # Hydra wraps ImportError, AttributeError, ... alike
        cause = error.__cause__ or error
        raise ConfigError(
            f"{key}._target_",
            f"cannot import {path} ({cause}); run hl-train from the folder that holds the "
            "module, or put its folder on PYTHONPATH",
        ) from None
    if not callable(target):
        raise ConfigError(f"{key}._target_", f"{path} is not a class or function")
    return typing.cast(Callable[..., Any], target)


def check_keys(
    key: str, given: Iterable[str], allowed: Sequence[str], owner: str, open_ended: bool = False
) -> None:
    """Raise a ConfigError naming the first of ``given`` not in ``allowed``, with the keys
    that exist and the closest one; ``open_ended`` targets (``**kwargs``) take any key.

    Example:
        >>> try:
        ...     check_keys("loss", ["levelweight"], ["level_weights", "class_weights"], "loss 'x'")
        ... except ConfigError as error:
        ...     print(error.key, str(error).split("; ")[-1])
        loss.levelweight its options: level_weights, class_weights
    """
    if open_ended:
        return
    for name in given:
        if name in allowed or name in _SPECIAL:
            continue
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            _join(key, name),
            f"{owner} takes no option {name}{hint}; its options: {', '.join(allowed) or 'none'}",
        )


def check_values(key: str, values: Mapping[str, Any], hints: Mapping[str, Any]) -> None:
    """Raise a ConfigError (from OmegaConf's validation) for the first value of ``values``
    whose type does not fit its type hint in ``hints``; untyped or complex hints pass.

    Example:
        >>> try:
        ...     check_values("trainer", {"max_epochs": "abc"}, {"max_epochs": int | None})
        ... except ConfigError as error:
        ...     print(error.key)
        trainer.max_epochs
    """
    values = {
        name: OmegaConf.to_container(v, resolve=True) if isinstance(v, Container) else v
        for name, v in values.items()
    }
    fields: list[tuple[str, Any, Any]] = []
    for name, value in values.items():
        hint = _omegaconf_type(hints.get(name, Any))
        if typing.get_origin(hint) is list and not isinstance(value, list | None):
            raise ConfigError(_join(key, name), f"expected a list, got {value!r}")
        choices = _choices(hints.get(name, Any))
        if choices and value is not None and value not in choices:
            shown = ", ".join(str(c) for c in choices)
            raise ConfigError(_join(key, name), f"{value!r} is not one of {shown}")
        optional = Any if hint is Any else typing.Optional[hint]  # noqa: UP045 (a runtime type)
        fields.append((name, optional, dataclasses.field(default=None)))
    schema = dataclasses.make_dataclass("Schema", fields)
    try:
        OmegaConf.merge(OmegaConf.structured(schema), dict(values))
    except OmegaConfBaseException as error:
        problem = str(error.msg).splitlines()[0]  # the lines after it repeat the key
        raise ConfigError(_join(key, error.full_key), problem) from None


def check_node(key: str, node: DictConfig, skip: Sequence[str] = ()) -> Callable[..., Any]:
    """Check a config node with a ``_target_`` against its target's signature (keys, then
    value types), leaving out the ``skip`` keys that the app fills in; return the target.

    Example:
        >>> from omegaconf import OmegaConf
        >>> node = OmegaConf.create({"_target_": "lightning.Trainer", "max_epoch": 3})
        >>> try:
        ...     check_node("trainer", node)
        ... except ConfigError as error:
        ...     print(str(error).split(";")[0])
        config key trainer.max_epoch: Trainer takes no option max_epoch (did you mean max_epochs?)
    """
    for name in node:
        if OmegaConf.is_missing(node, name):
            raise ConfigError(
                _join(key, name), f"has no value (???): set it, e.g. {_join(key, name)}=..."
            )
    target = locate_target(key, str(node["_target_"]))
    parameters, open_ended = _parameters(target)
    values = _plain_values(node, skip)
    name = getattr(target, "__name__", str(node["_target_"]))
    check_keys(key, values, [p for p in parameters if p not in skip], name, open_ended)
    check_values(key, values, parameter_hints(target))
    return target


def _plain_values(node: DictConfig, skip: Sequence[str]) -> dict[str, Any]:
    """Return the node's keys and resolved values, without Hydra's special keys and ``skip``."""
    values = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    assert isinstance(values, dict)
    return {str(k): v for k, v in values.items() if k not in _SPECIAL and k not in skip}


def _parameters(target: Callable[..., Any]) -> tuple[list[str], bool]:
    """Return the keyword parameters of ``target`` and whether it takes ``**kwargs``."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: take anything
        return [], True
    names, open_ended = [], False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            names.append(parameter.name)
    return names, open_ended


def parameter_hints(target: Callable[..., Any]) -> dict[str, Any]:
    """Return the type hints of ``target``'s parameters (its ``__init__``'s for a class);
    none where they cannot be evaluated.

    Example:
        >>> parameter_hints(lambda x, y=1: x)
        {}
    """
    function = target.__init__ if inspect.isclass(target) else target  # type: ignore[misc]
    try:
        return typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: check keys only
        return {}


def _choices(hint: Any) -> tuple[Any, ...]:
    """Return the values of a ``Literal`` hint (or of ``Literal | None``), else ()."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if _is_union(hint):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _choices(args[0])
    return ()


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _omegaconf_type(hint: Any) -> Any:
    """Return the OmegaConf field type that checks values of ``hint`` (None aside): scalars
    and lists of scalars; Any for everything else (no check)."""
    if hint in _SCALARS:
        return hint
    if _is_union(hint):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _omegaconf_type(options[0]) if len(options) == 1 else Any
    origin = typing.get_origin(hint)
    if origin in (list, tuple, Sequence):
        args: tuple[Any, ...] = typing.get_args(hint)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return Any
        if args and args[0] in _SCALARS:
            return list[args[0]]  # type: ignore[valid-type]
    return Any


#: Errors of a value that its target refuses (a negative learning rate, batch size 0, ...).
_VALUE_ERRORS = (ValueError, MisconfigurationException)
#: User errors that name their problem themselves (file and line): passed on unchanged.
_NAMED_ERRORS = (BadDataError, HierarchyError, ConfigError)


@contextmanager
def building(key: str) -> Iterator[None]:
    """Turn a value that the target being built refuses into a ConfigError naming ``key``
    (or ``key.<option>`` where the error names its option); other errors pass on."""
    try:
        yield
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, _NAMED_ERRORS):
            raise cause from None
        if isinstance(cause, BackboneConfigError):
            raise ConfigError("backbone", str(cause)) from None
        if isinstance(cause, _VALUE_ERRORS):
            raise ConfigError(_option_key(key, cause), str(cause)) from None
        raise
    except _NAMED_ERRORS:
        raise
    except _VALUE_ERRORS as error:
        raise ConfigError(_option_key(key, error), str(error)) from None


def _option_key(key: str, error: BaseException) -> str:
    """Return ``key.<option>`` where the error names the option it refuses, else ``key``."""
    option = getattr(error, "option", None)
    return f"{key}.{option}" if isinstance(option, str) else key
