"""MkDocs hook: model reference tables generated from the model registry.

A page line ``<!-- model-reference: NAME -->`` becomes the command-line name, default
steps, options, presets, the parameter table (default, bounds, prior, description), the
observables with their units, and where the model's gradients are validated (the
docstring of its ``gradient_warning``).  One source of truth: the code.
"""

from __future__ import annotations

import inspect
import re

MARKER = re.compile(r"^<!-- model-reference: ([a-z0-9-]+) -->$", re.MULTILINE)


def _number(x: float) -> str:
    return "∞" if x == float("inf") else ("−∞" if x == float("-inf") else f"{x:g}")


def model_reference(name: str) -> str:
    from agentgrad.models import REGISTRY

    if name not in REGISTRY:
        raise ValueError(f"model-reference: unknown model {name!r}; known: {sorted(REGISTRY)}")
    entry = REGISTRY[name]
    lines = [
        f"**Command line:** `agentgrad run {name}` · default {entry.default_steps} steps · "
        f"default estimator `{entry.default_estimator}`"
        + (
            f" · options {', '.join('`--' + o.replace('_', '-') + '`' for o in entry.options)}"
            if entry.options
            else ""
        ),
        "",
    ]
    if entry.presets:
        lines += [f"**Presets** (`--preset`): {', '.join(f'`{p}`' for p in entry.presets)}", ""]
    lines += [
        "| parameter | default | bounds | prior | description |",
        "|---|---:|---|---|---|",
    ]
    for pname, p in entry.param_space.params.items():
        lines.append(
            f"| `{pname}` | {_number(p.default)} | [{_number(p.lower)}, {_number(p.upper)}] "
            f"| {p.prior} | {p.description} |"
        )
    units = entry.observable_units
    if units:
        lines += ["", "| observable | unit |", "|---|---|"]
        lines += [f"| `{o}` | {u} |" for o, u in units.items()]
    validity = entry.model_class.gradient_warning.__doc__ if entry.model_class else None
    if validity:
        lines += ["", f"**Gradients validated:** {inspect.cleandoc(validity)}"]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda m: model_reference(m.group(1)), markdown)


ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc):<code>(~?)([\w.]+)</code>")


def _role(match: re.Match) -> str:
    short, target = match.groups()
    shown = target.rsplit(".", 1)[-1] if short else target
    return f'<autoref optional identifier="{target}"><code>{shown}</code></autoref>'


def on_page_content(html: str, page, config, files) -> str:
    """Docstrings use Sphinx roles (``:func:`simulate```); link them where mkdocstrings
    documents the target, and drop the role markup everywhere."""
    return ROLE.sub(_role, html)
