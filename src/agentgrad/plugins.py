"""Models from outside the library on the command line.

``agentgrad run SPEC`` accepts, besides the names of the model library:

* ``path/to/file.py:Name`` — ``Name`` defined in a Python file;
* ``package.module:Name`` — ``Name`` importable from an installed module;
* a name registered by an installed package under the ``agentgrad.models`` entry-point
  group (``[project.entry-points."agentgrad.models"] my-model = "pkg.mod:Name"``).

``Name`` is a :class:`~agentgrad.models.ModelEntry`, a function returning one, or a
:class:`~agentgrad.engine.Model` subclass.  A subclass is built by its classmethod
``from_options(options: BuildOptions)`` if it has one, else by calling it with no
arguments (plus ``estimator=`` when its constructor takes one).  It declares which
structural options it accepts in the class attribute ``cli_options`` (e.g.
``("agents",)``), its default number of steps in ``default_steps`` (default 50) and a
one-line summary in its docstring.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from agentgrad.errors import AgentgradError

ENTRY_POINT_GROUP = "agentgrad.models"


class PluginError(AgentgradError):
    """A user model named on the command line cannot be loaded."""


def _load_object(spec: str) -> Any:
    target, _, attr = spec.rpartition(":")
    if not target or not attr.isidentifier():
        raise PluginError(f"model {spec!r}: use path/to/file.py:Name or package.module:Name")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise PluginError(f"model {spec!r}: no such file {target!r}")
        name = f"agentgrad_user_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise PluginError(f"model {spec!r}: {target!r} is not a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as err:
            sys.modules.pop(name, None)
            raise PluginError(f"model {spec!r}: importing {target} failed: {err!r}") from None
    else:
        try:
            module = importlib.import_module(target)
        except Exception as err:
            raise PluginError(f"model {spec!r}: cannot import {target!r}: {err!r}") from None
    if not hasattr(module, attr):
        raise PluginError(f"model {spec!r}: {target} defines no {attr!r}")
    return getattr(module, attr)


def entry_from_object(obj: Any, name: str) -> Any:
    """A :class:`~agentgrad.models.ModelEntry` from a plugin object (module docstring)."""
    from agentgrad.engine import Model
    from agentgrad.models import ModelEntry

    if isinstance(obj, ModelEntry):
        return obj
    if inspect.isclass(obj) and issubclass(obj, Model):
        return _entry_from_class(obj, name)
    if callable(obj):
        try:
            made = obj()
        except Exception as err:
            raise PluginError(f"model {name!r}: calling {obj!r} failed: {err!r}") from None
        if isinstance(made, ModelEntry):
            return made
    raise PluginError(
        f"model {name!r} is neither a Model subclass nor a ModelEntry (got {type(obj).__name__})"
    )


def _entry_from_class(cls: type, name: str) -> Any:
    from agentgrad.models import BuildOptions, ModelEntry

    takes_estimator = "estimator" in inspect.signature(cls).parameters
    options = tuple(getattr(cls, "cli_options", ()))
    unknown = set(options) - {"agents", "graph", "grid_size", "population"}
    if unknown:
        raise PluginError(f"model {name!r}: unknown cli_options {sorted(unknown)}")

    def build(o: BuildOptions):
        if hasattr(cls, "from_options"):
            return cls.from_options(o)
        return cls(estimator=o.estimator) if takes_estimator else cls()

    from agentgrad.estimators import StraightThrough

    try:  # the parameter space is an instance property: build once with defaults
        space = build(BuildOptions(StraightThrough())).param_space
    except AgentgradError:
        raise
    except Exception as err:
        raise PluginError(f"model {name!r}: building it with defaults failed: {err!r}") from None
    doc = (inspect.getdoc(cls) or cls.__name__).splitlines()[0]
    return ModelEntry(
        name,
        doc,
        space,
        int(getattr(cls, "default_steps", 50)),
        options + (("estimator",) if takes_estimator or hasattr(cls, "from_options") else ()),
        build,
        dict(getattr(cls, "presets", {})),
        model_class=cls,
    )


def registered_names() -> dict[str, Any]:
    """Entry points of the ``agentgrad.models`` group, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def resolve_model(spec: str) -> Any:
    """The :class:`~agentgrad.models.ModelEntry` for a command-line model ``spec``."""
    from agentgrad.models import REGISTRY

    if spec in REGISTRY:
        return REGISTRY[spec]
    if spec.startswith("surrogate:"):  # a trained surrogate (agentgrad surrogate train)
        from agentgrad.cli_surrogate import surrogate_entry

        return surrogate_entry(spec.removeprefix("surrogate:"))
    plugins = registered_names()
    if spec in plugins:
        try:
            obj = plugins[spec].load()
        except Exception as err:
            raise PluginError(f"model {spec!r}: loading its entry point failed: {err!r}") from None
        return entry_from_object(obj, spec)
    if ":" in spec:
        return entry_from_object(_load_object(spec), spec)
    names = ", ".join([*REGISTRY, *plugins])
    raise PluginError(
        f"unknown model {spec!r}; available: {names}, or path/to/file.py:Class "
        "(see `agentgrad models`)"
    )
