"""Every code block of the documentation runs (docs/ and README.md), and the site's
API reference covers every public name.  The rules are in ``tests/docs_blocks.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from docs_blocks import ROOT, RUNNABLE, blocks, for_testing, pages

import agentgrad as ag

ALL_BLOCKS = [b for page in pages() for b in blocks(page)]
RUN_PAGES = sorted({b.page for b in ALL_BLOCKS if b.runnable})
# The default suite runs the README, the home page, getting started and the tutorial (at
# the reduced sizes of their "# test:" lines); the concept, model and how-to pages call
# what other default tests cover, so they run with -m slow (.ci/run) to keep the default
# suite under 15 minutes.
DEFAULT_PAGES = ("README.md", "docs/index.md", "docs/getting-started.md", "docs/tutorial/")


def _slow(page: str) -> bool:
    return not page.startswith(DEFAULT_PAGES)


def _page_params():
    return [
        pytest.param(page, marks=pytest.mark.slow, id=page)
        if _slow(page)
        else pytest.param(page, id=page)
        for page in RUN_PAGES
    ]


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: f"{b.page}:{b.line}")
def test_every_block_runs_or_says_why_not(block):
    assert block.language, f"{block.page}:{block.line}: give the fenced block a language"
    if block.not_run is not None:
        assert block.not_run.strip(), f"{block.page}:{block.line}: not-run needs a reason"
    else:
        assert block.language in RUNNABLE, (
            f"{block.page}:{block.line}: a {block.language} block cannot run; mark it "
            "<!-- not-run: REASON -->"
        )


@pytest.mark.parametrize("page", _page_params())
def test_page_code_runs(page, tmp_path, monkeypatch):
    for name in ("examples", "benchmarks", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # a real module, so that classes defined on the page (equinox dataclasses) resolve it
    module = types.ModuleType("docs_page")
    monkeypatch.setitem(sys.modules, "docs_page", module)
    namespace = module.__dict__
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for block in blocks(ROOT / page):
        if not block.runnable:
            continue
        code = for_testing(block.code)
        where = f"{block.page}:{block.line}"
        if block.language == "python":
            exec(compile(code, where, "exec"), namespace)  # noqa: S102
        else:
            done = subprocess.run(
                ["bash", "-eo", "pipefail", "-c", code],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, (
                f"{where} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )


def test_every_public_name_is_in_the_api_reference_with_a_docstring():
    undocumented = [n for n in ag.__all__ if not (getattr(ag, n).__doc__ or "").strip()]
    assert not undocumented, f"write docstrings for: {undocumented}"
    text = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    missing = [n for n in ag.__all__ if f"::: agentgrad.{n}\n" not in text + "\n"]
    assert not missing, f"add to docs/api/*.md: {missing}"


def test_every_registry_model_has_a_page_with_its_reference():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(ROOT / "docs"))
    from agentgrad.models import REGISTRY

    for name, entry in REGISTRY.items():
        page = (ROOT / "docs" / "models" / f"{name}.md").read_text()
        assert f"<!-- model-reference: {name} -->" in page
        rendered = hooks.on_page_markdown(page, None, None, None)
        for parameter in entry.param_space.names:
            assert f"`{parameter}`" in rendered
        for observable in entry.observable_units:
            assert f"`{observable}`" in rendered
