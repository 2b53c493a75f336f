"""Output directories that never lose finished work.

Every command that writes files follows three rules:

1. :func:`prepare_output_dir` runs *before any computation*: the directory must be
   creatable and writable, must not be an existing file, and none of the files the
   command will write may be an existing directory.
2. Each file is written atomically: to a temporary file in the same directory, then
   ``os.replace``-d onto its name, so an interrupted or failing write never leaves a
   half-written file under the final name.
3. If writing still fails at the end (disk full, directory removed meanwhile), every
   output is written to a fresh fallback directory under the system temporary
   directory and :class:`OutputError` names it, so computed results are never
   silently discarded.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from agentgrad.errors import AgentgradError

Writer = Callable[[Path], None]


class OutputError(AgentgradError):
    """An output directory or file cannot be used or written."""


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def prepare_output_dir(out: str | os.PathLike, files: Sequence[str] = ()) -> Path:
    """Check (and create) the output directory ``out`` for writing ``files`` into it.

    Raises :class:`OutputError` with a one-line reason when ``out`` is empty, is an
    existing file, cannot be created or written, or when one of ``files`` exists there
    as a directory.  Runs a real write probe (permission bits lie for root and on some
    network file systems).
    """
    if not str(out).strip():
        raise OutputError("--out is empty; give an output directory, e.g. --out results")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {str(path)!r} is an existing file; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output directory {str(path)!r}: {_reason(err)}") from None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".agentgrad-probe-"):
            pass
    except OSError as err:
        raise OutputError(
            f"output directory {str(path)!r} is not writable: {_reason(err)}"
        ) from None
    for name in files:
        if (path / name).is_dir():
            raise OutputError(
                f"{str(path / name)!r} is a directory; remove it or choose another --out"
            )
    return path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); on success rename it onto
    ``path``, on failure remove it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, writer: Writer) -> None:
    """Call ``writer(tmp)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)


def save_outputs(out: Path, writers: dict[str, Writer], command: str = "agentgrad") -> list[Path]:
    """Write every output atomically into ``out``; on failure, into a fallback directory.

    Returns the written paths.  If any write into ``out`` fails, all outputs are written
    to ``<tmp>/agentgrad-<command>-XXXX`` and :class:`OutputError` names both the failure
    and the fallback (or says that the fallback failed too).
    """
    try:
        return _write_all(out, writers)
    except OSError as err:
        first = f"cannot write to {str(out)!r}: {_reason(err)}"
    try:
        fallback = Path(tempfile.mkdtemp(prefix=f"agentgrad-{command}-"))
        _write_all(fallback, writers)
    except OSError as err:
        raise OutputError(f"{first}; the fallback write failed too: {_reason(err)}") from None
    raise OutputError(f"{first}; the results were saved in {fallback} instead")


def _write_all(directory: Path, writers: dict[str, Writer]) -> list[Path]:
    written = []
    for name, writer in writers.items():
        write_atomic(directory / name, writer)
        written.append(directory / name)
    return written
