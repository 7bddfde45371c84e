"""`ledger` starts fast: its help and its reads load only what they use.

Not timed (timings belong in bench/startup.py): each test looks at which modules
a fresh interpreter holds after the step, so a heavy import added at the top of
a command module fails here, whoever adds it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import TyperGroup, TyperOption

from commands.app import app
from commands.lazy import Coercion, command
from commands.reads_render import Format
from ledger.store.eventstore import open_store
from tests.commands.conftest import REPO, clean_env

# Never needed to print help: the store, the domain's models, the read side, the
# HTTP API, the drivers, the terminal renderer and anything numerical.
HEAVY = ("eventsourcing", "psycopg", "psycopg_pool", "pydantic", "fastapi", "uvicorn",
         "starlette", "rich", "cryptography", "matplotlib", "scipy", "numpy", "pandas",
         "ledger.domain.events", "ledger.domain.values", "ledger.store", "ledger.application",
         "ledger.bootstrap", "ledger.audit", "ledger.auditlog", "projections")
# A read on SQLite needs the store and the read side, never the write side, the
# PostgreSQL driver, the HTTP API or the audit signatures.
NOT_FOR_A_READ = ("psycopg", "psycopg_pool", "fastapi", "uvicorn", "starlette",
                  "cryptography", "ledger.application")

LOADED = "import json, sys; print(json.dumps(sorted(sys.modules)))"


def modules_after(code: str, cwd: Path) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (its output is ignored)."""
    script = (f"import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
              f"    try:\n        {code}\n    except SystemExit:\n        pass\n{LOADED}")
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def heavy(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded for n in names if m == n or m.startswith(n + "."))


def run_main(*args: str) -> str:
    return f"import sys; from commands.app import main; sys.argv = ['ledger', *{args!r}]; main()"


@pytest.mark.e2e
def test_importing_the_command_line_loads_nothing_heavy() -> None:
    assert heavy(modules_after("import commands.app", REPO), HEAVY) == []


@pytest.mark.e2e
@pytest.mark.parametrize("args", [("--help",), ()], ids=["--help", "no arguments"])
def test_the_top_level_help_loads_nothing_heavy(args: tuple[str, ...]) -> None:
    assert heavy(modules_after(run_main(*args), REPO), HEAVY) == []


@pytest.mark.e2e
def test_a_read_on_sqlite_loads_neither_the_write_side_nor_the_postgres_driver(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "ledger.db")
    open_store(db).close()  # an empty ledger: a read of a missing one is refused early
    loaded = modules_after(run_main("--db", db, "holders", "--format", "json"), tmp_path)
    assert "projections.materialise" in loaded  # it did run the read
    assert heavy(loaded, NOT_FOR_A_READ) == []


BUILT = ("import json, pydantic\n"
         "models = [v for v in vars(module).values() if isinstance(v, type)\n"
         "          and issubclass(v, pydantic.BaseModel) and v.__module__ == module.__name__]\n"
         "assert models\n"
         "print(json.dumps(sorted(m.__name__ for m in models if m.__pydantic_complete__)))")


def models_built_on_import(module: str) -> list[str]:
    """The pydantic models of `module` whose validators a fresh import builds."""
    code = f"import {module} as module\n{BUILT}"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.e2e
@pytest.mark.parametrize("module", ["ledger.domain.events", "ledger.application.commands"])
def test_importing_the_models_builds_none_of_their_validators(module: str) -> None:
    # A run validates one kind of command and reads events it may never validate:
    # each model builds its validator when first used.
    assert models_built_on_import(module) == []


# --- the lazy entry point gives what Typer's own build gives ----------------------------


def help_of(group: TyperGroup, path: tuple[str, ...]) -> str:
    ctx = group.make_context("ledger", [], resilient_parsing=True)
    current: object = group
    for word in path:
        assert isinstance(current, TyperGroup)
        sub = current.get_command(ctx, word)
        assert sub is not None, path
        ctx = sub.make_context(word, [], parent=ctx, resilient_parsing=True)
        current = sub
    assert isinstance(current, typer.core.TyperCommand | TyperGroup)
    return current.get_help(ctx)


def command_paths(group: TyperGroup) -> list[tuple[str, ...]]:
    ctx = group.make_context("ledger", [], resilient_parsing=True)
    paths: list[tuple[str, ...]] = [()]
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if isinstance(sub, TyperGroup):
            paths += [(name, *rest) for rest in command_paths(sub)]
        else:
            paths.append((name,))
    return paths


def eager_group() -> TyperGroup:
    """What Typer builds on its own, every command at once (as the in-process tests use)."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return group


EAGER = eager_group()


@pytest.mark.parametrize("path", command_paths(EAGER), ids=lambda p: " ".join(p) or "ledger")
def test_every_help_text_is_the_same_built_on_demand(path: tuple[str, ...]) -> None:
    lazy = command(app)
    assert isinstance(lazy, TyperGroup)
    assert help_of(lazy, path) == help_of(EAGER, path)


def test_the_lazy_entry_point_lists_the_same_commands_in_the_same_order() -> None:
    lazy = command(app)
    assert isinstance(lazy, type(EAGER))  # the app's own group class, behaviour and all
    ctx = lazy.make_context("ledger", [], resilient_parsing=True)
    assert lazy.list_commands(ctx) == EAGER.list_commands(ctx)
    assert [p.name for p in lazy.params] == [p.name for p in EAGER.params]


@pytest.mark.e2e
@pytest.mark.parametrize("args", [("holders", "--help"), ("spend", "commit", "--help"),
                                  ("--db", "x.db", "trail", "--help")],
                         ids=["holders", "spend commit", "trail after --db"])
def test_a_commands_help_loads_nothing_heavy(args: tuple[str, ...]) -> None:
    assert heavy(modules_after(run_main(*args), REPO), HEAVY) == []


# --- options coerce as Typer's own coercion does, built only when needed ---------------


class Spelled(str):
    """Text of a str subclass: Typer's coercion gives it back as a plain str."""

    __slots__ = ()


@pytest.mark.parametrize("value", ["R-0001", "", " £12,500.50 ", "\u202e", Spelled("QS3"),
                                   b"R-0002", None],
                         ids=["text", "empty", "spaces", "bidi", "str subclass", "bytes", "none"])
def test_a_text_option_takes_the_value_typers_own_coercion_gives(value: object) -> None:
    param, ctx = option_of(("spend", "commit"), "ref")
    assert isinstance(param.get_runtime_param(), Coercion)
    typers = build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx)
    ours = param.get_runtime_param().coerce(value, param=param, ctx=ctx)
    assert (ours, type(ours)) == (typers, type(typers))


@pytest.mark.parametrize("value", [("QS3", "QS2"), (), ["QS1"], (Spelled("QS3"),),
                                   (b"QS4",), None],
                         ids=["tuple", "empty", "list", "str subclass", "bytes", "none"])
def test_a_repeatable_text_option_takes_the_values_typers_own_coercion_gives(
    value: object,
) -> None:
    param, ctx = option_of(("spend", "commit"), "qs")
    assert isinstance(param.get_runtime_param(), Coercion)
    typers = build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx)
    ours = param.get_runtime_param().coerce(value, param=param, ctx=ctx)
    assert (ours, [type(v) for v in ours]) == (typers, [type(v) for v in typers])


def test_a_repeatable_option_refuses_what_typers_own_coercion_refuses() -> None:
    param, ctx = option_of(("spend", "commit"), "qs")
    with pytest.raises(BadParameter) as typers:
        build_runtime_param(param.type_descriptor).coerce("QS3", param=param, ctx=ctx)
    with pytest.raises(BadParameter) as ours:
        param.get_runtime_param().coerce("QS3", param=param, ctx=ctx)
    assert str(ours.value) == str(typers.value)


def test_an_option_not_given_builds_no_coercion() -> None:
    group = command(app)
    ctx = group.make_context("ledger", [], resilient_parsing=True)
    params = [p for p in group.get_params(ctx) if isinstance(p, TyperOption)]
    assert "help" in [p.name for p in params]
    for param in params:
        coercion = param.get_runtime_param()
        assert isinstance(coercion, Coercion), param.name
        assert coercion.coerce(None, param=param, ctx=ctx) is None
        assert "typers" not in vars(coercion), param.name  # no TypeAdapter was built


@pytest.mark.parametrize("given", ["yaml", " table", "", "json,csv"])
def test_a_choice_refuses_as_typers_own_coercion_refuses(given: str) -> None:
    param, ctx = option_of(("holders",), "fmt")
    with pytest.raises(BadParameter) as refused_by_typer:
        build_runtime_param(param.type_descriptor).coerce(given, param=param, ctx=ctx)
    with pytest.raises(BadParameter) as refused:
        param.get_runtime_param().coerce(given, param=param, ctx=ctx)
    assert str(refused.value) == str(refused_by_typer.value)


@pytest.mark.parametrize("given", ["json", "CSV", "tablE", Format.table])
def test_a_choice_coerces_as_typers_own_coercion_does(given: object) -> None:
    param, ctx = option_of(("holders",), "fmt")
    typers = build_runtime_param(param.type_descriptor).coerce(given, param=param, ctx=ctx)
    assert param.get_runtime_param().coerce(given, param=param, ctx=ctx) is typers


def test_a_choice_given_as_text_builds_no_coercion() -> None:
    param, ctx = option_of(("holders",), "fmt")
    coercion = param.get_runtime_param()
    assert isinstance(coercion, Coercion)
    assert coercion.coerce("JSON", param=param, ctx=ctx) is Format.json
    assert "typers" not in vars(coercion)  # no TypeAdapter was built


@pytest.mark.parametrize("member", list(Format), ids=[f.value for f in Format])
def test_a_choice_given_as_its_member_is_taken_as_typers_own_coercion_takes_it(
    member: Format,
) -> None:
    param, ctx = option_of(("holders",), "fmt")
    coercion = param.get_runtime_param()
    assert isinstance(coercion, Coercion)
    typers = build_runtime_param(param.type_descriptor).coerce(member, param=param, ctx=ctx)
    assert coercion.coerce(member, param=param, ctx=ctx) is typers is member
    assert "typers" not in vars(coercion)  # a default needs no TypeAdapter


def option_of(path: tuple[str, ...], name: str) -> tuple[TyperOption, Any]:
    """A parameter of a command the lazy entry point built, and a context for it."""
    current: Any = command(app)
    ctx = current.make_context("ledger", [], resilient_parsing=True)
    for word in path:
        current = current.get_command(ctx, word)
        ctx = current.make_context(word, [], parent=ctx, resilient_parsing=True)
    found = next(p for p in current.params if p.name == name)
    assert isinstance(found, TyperOption)
    return found, ctx
