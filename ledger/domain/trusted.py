"""Models built from values already proven valid, without validating them again.

`construct(cls, values)` is pydantic's `model_construct` for the ledger's frozen,
extra-forbidding models, at a fraction of its cost: the fields' layout and
defaults are read once per class. It is for the hot paths only (a parsed
command's values becoming its event, an `apply` line's values becoming its
command), where every value is already exactly what validation would make of it;
the tests compare what it builds with what validation builds
(tests/ledger/domain/test_validated_events.py, tests/ledger/application/
test_fast_commands.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_IMMUTABLE = (type(None), bool, int, float, str, bytes)


@dataclass(frozen=True, slots=True)
class Layout:
    """A model class's fields: every name in order with its default (None when required),
    the required names, the optional fields whose default is made afresh each time, and
    every name (copied as the fields set of an instance given them all: a set's copy
    takes the hashes it holds, where a set of a dict's keys hashes each again)."""

    template: dict[str, Any]
    required: frozenset[str]
    factories: tuple[tuple[str, Callable[[], Any]], ...]
    names: frozenset[str]


@functools.cache
def layout(cls: type[BaseModel]) -> Layout:
    template: dict[str, Any] = {}
    required: set[str] = set()
    factories: list[tuple[str, Callable[[], Any]]] = []
    for name, info in cls.model_fields.items():
        template[name] = None
        if info.is_required():
            required.add(name)
        elif info.default_factory is None and (
            isinstance(info.default, _IMMUTABLE) or info.default == ()
        ):
            template[name] = info.default
        else:
            factories.append(
                (name, functools.partial(info.get_default, call_default_factory=True)))
    return Layout(template, frozenset(required), tuple(factories), frozenset(template))


# The setters of the attributes every model keeps (BaseModel's slots and __dict__),
# called directly: object.__setattr__ finds the same descriptor by name each time.
_SLOTS = BaseModel.__dict__
set_dict = _SLOTS["__dict__"].__set__
set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__
set_extra = _SLOTS["__pydantic_extra__"].__set__
set_private = _SLOTS["__pydantic_private__"].__set__
# What `cls.__new__` is for every model here (none defines its own), without reading it
# off the class through pydantic's metaclass, whose __getattr__ hook makes that a slow read.
_new = object.__new__


def construct(cls: type[M], values: dict[str, Any], private: dict[str, Any] | None = None) -> M:
    """An instance of `cls` holding `values` (by field name), the fields not given at
    their defaults, and `private` as its private attributes.

    Raises TypeError when `values` names a field `cls` does not have or lacks a
    required one: a programming error, never an input's.
    """
    shape = layout(cls)
    template = shape.template
    fields = template.copy()
    fields.update(values)
    size, given = len(template), len(values)
    # Every field given, and none other (the hot path): nothing required is missing.
    if len(fields) != size or (given != size and not values.keys() >= shape.required):
        if not values.keys() >= shape.required:
            missing = ", ".join(sorted(shape.required - set(values)))
            raise TypeError(f"{cls.__name__} needs {missing}")
        unknown = sorted(set(values) - set(template))
        raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
    for name, factory in shape.factories:
        if name not in values:
            fields[name] = factory()
    model = _new(cls)
    set_dict(model, fields)
    set_fields_set(model, set(shape.names) if given == size else set(values))
    set_extra(model, None)
    set_private(model, private)
    return model
