"""Where a notebook that papermill runs should write its results: beside the executed notebook.

``papermill notebooks/02_register.ipynb runs/out.ipynb -p modality ctmr`` starts the kernel in the
folder papermill was started in (or its ``--cwd``), so a results file named without a folder lands
there, e.g. in the repository's root, far from ``runs/out.ipynb``. Papermill hands the kernel the
output notebook's path only when asked (``--inject-output-path``, a ``PAPERMILL_OUTPUT_PATH``
parameter); otherwise the kernel reads it from the command line of the process that started it,
papermill itself, parsed by papermill's own command-line parser (so every option, ``-p NAME VALUE``
included, is read as papermill reads it) and resolved against that process's working folder.
Written here because neither papermill nor Jupyter offers it.

Only a kernel started by the ``papermill`` command has such a parent. A kernel run by papermill's
Python API (``papermill.execute_notebook``, as :mod:`imse_study.study.runner` does) or by Jupyter gets
``None`` and writes into its working folder, which those callers choose (the study passes the
results path and runs each notebook in its output folder).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["papermill_output_path", "results_path", "adopt_papermill_command"]

_COMMAND_NAMES = ("papermill", "papermill.exe", "papermill-script.py")


def papermill_output_path() -> Path | None:
    """The output notebook of the ``papermill`` command running this kernel (an absolute path), or
    ``None``: not run by that command, or an output that is no local file (``-``, a URL)."""
    injected = _notebook_variables().get("PAPERMILL_OUTPUT_PATH")
    parent = _parent_process()
    argv, cwd = _command_line(parent)
    output = injected if isinstance(injected, str) else _parameter(argv, "output_path")
    if not output or output == "-" or "://" in output:
        return None
    if "{" in output:  # papermill formats an output path like runs/{modality}.ipynb with the parameters
        try:
            output = output.format(**_notebook_variables())
        except Exception:  # noqa: BLE001 - a placeholder the notebook does not define: unknown
            return None
    path = Path(output).expanduser()
    return path if path.is_absolute() else (Path(cwd) if cwd else Path.cwd()) / path


def adopt_papermill_command() -> None:
    """In a kernel run by the ``papermill`` command, take from that command what the study needs,
    leaving alone whatever the environment already sets:

    - the package's progress bars go to its terminal (``IMSE_STUDY_PROGRESS=terminal``, see
      :mod:`imse_study.progress`): papermill shows only its "Executing" bar, and a long cell would
      otherwise give no sign of life;
    - the checkout is the one holding the input notebook (``IMSE_STUDY_CHECKOUT``), so that
      ``papermill ~/imse_study/notebooks/03_traditional.ipynb out.ipynb`` works from any folder.
    """
    from imse_study.checkout import ENV_CHECKOUT, is_checkout
    from imse_study.progress import ENV_PROGRESS

    if not _notebook_variables():
        return
    argv, cwd = _command_line(_parent_process())
    if _papermill_arguments(argv) is None:
        return
    os.environ.setdefault(ENV_PROGRESS, "terminal")
    source = _parameter(argv, "notebook_path")
    if source and "://" not in source and ENV_CHECKOUT not in os.environ:
        path = Path(source).expanduser()
        path = path if path.is_absolute() else (Path(cwd) if cwd else Path.cwd()) / path
        found = next((f for f in path.resolve().parents if is_checkout(f)), None)
        if found is not None:
            os.environ[ENV_CHECKOUT] = str(found)


def results_path(name: str, given: str | os.PathLike | None = None) -> Path:
    """Where a notebook writes its results file ``name``: ``given`` when the run names a path (used
    as given, like any path), else ``name`` beside the output notebook of the ``papermill`` command
    running this kernel, else ``name`` in the working folder."""
    if given:
        return Path(given)
    output = papermill_output_path()
    return output.parent / name if output is not None else Path(name)


def _notebook_variables() -> dict:
    """The running notebook's variables (its parameters among them); empty outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return {}
    shell = get_ipython()
    return dict(shell.user_ns) if shell is not None else {}


def _parent_process():
    """The process that started this one (psutil's), or None when psutil cannot tell."""
    try:
        import psutil

        return psutil.Process(os.getppid())
    except Exception:  # noqa: BLE001 - no psutil, or the parent is gone: papermill cannot be found
        return None


def _command_line(process) -> tuple[list[str], str | None]:
    """(command line, working folder) of a psutil process; empty when it cannot be read."""
    if process is None:
        return [], None
    try:
        return list(process.cmdline()), process.cwd()
    except Exception:  # noqa: BLE001 - access denied or the process ended
        return [], None


def _papermill_arguments(argv: list[str]) -> list[str] | None:
    """The arguments given to papermill in a command line (``papermill IN OUT ...``, ``python
    /usr/bin/papermill IN OUT ...``, ``python -m papermill IN OUT ...``), or None for another command.
    Only the first words are looked at: the program, the interpreter's script or ``-m`` module."""
    for i, word in enumerate(argv[:4]):
        if word == "-m":
            return argv[i + 2:] if argv[i + 1:i + 2] == ["papermill"] else None
        if Path(word).name in _COMMAND_NAMES:
            return argv[i + 1:]
    return None


def _parameter(argv: list[str], name: str) -> str | None:
    """Argument ``name`` (``notebook_path``, ``output_path``) of a papermill command line, read by
    papermill's own parser (None if absent, or not a papermill command line)."""
    args = _papermill_arguments(argv)
    if args is None:
        return None
    try:
        from papermill.cli import papermill as command

        context = command.make_context("papermill", args, resilient_parsing=True)
    except Exception:  # noqa: BLE001 - another papermill version or a command line it cannot parse
        return None
    value = context.params.get(name)
    return str(value) if value else None
