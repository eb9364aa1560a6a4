"""Where long work shows itself: progress bars and one-line notes (the console, or a notebook).

In a terminal, bars and notes go to stderr (stdout stays the command's
result, for pipes and --json). In a Jupyter notebook, notes go to stdout
(stderr is drawn red, like an error) and bars are tqdm's widget where
ipywidgets is installed, else text bars on stdout. Every phase that can take
more than ~2 s shows a bar or a note (training, evaluation passes, the
Kneser-Ney model's counting and scoring, experiments between runs).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def in_notebook() -> bool:
    """Running under a Jupyter kernel (ipykernel's shell)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def bar(**kwargs):
    """A tqdm bar (same arguments), drawn where it belongs: stderr in a terminal, a widget or stdout in a notebook."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401  (tqdm.notebook needs it)
            from tqdm.notebook import tqdm as notebook_tqdm

            kwargs.pop("file", None)
            kwargs.pop("dynamic_ncols", None)
            return notebook_tqdm(**kwargs)
        except ImportError:
            kwargs["file"] = sys.stdout
    from tqdm import tqdm

    kwargs.setdefault("file", sys.stderr)
    return tqdm(**kwargs)


def echo(text: str) -> None:
    """One note beside a bar (the bar is redrawn under it): stderr in a terminal, stdout in a notebook."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stdout if in_notebook() else sys.stderr)


@contextmanager
def _ticking(b, every: float) -> Iterator[None]:
    """Redraw bar `b` every `every` seconds from a thread (its elapsed time moves even while a long
    step, import or read runs); close it at the end."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            b.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    if not b.disable:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        b.close()


@contextmanager
def waiting(desc: str, show: bool = True, every: float = 0.5) -> Iterator[None]:
    """A line that counts the seconds of a phase with nothing to count (loading PyTorch, reading a
    corpus, building a model), redrawn every `every` seconds; removed when the phase ends. Only
    on a terminal or in a notebook: in a log file or a pipe it would be noise around the result."""
    show = show and (in_notebook() or sys.stderr.isatty())
    b = bar(total=None, desc=desc, bar_format="{desc}... {elapsed}", leave=False, disable=not show)
    with _ticking(b, every):
        yield


@contextmanager
def counter(
    desc: str, show: bool = True, unit: str = "batch", every: float = 0.5
) -> Iterator[Callable[[int, int], None]]:
    """A bar for a pass whose length its worker knows: yields `update(done, total)` for the worker to
    call (rnnlab.evaluate.evaluate's `on_batch`); redrawn every `every` seconds between calls too
    (a batch of a large softmax takes seconds); removed when the pass ends."""
    b = bar(total=None, desc=desc, unit=unit, disable=not show, leave=False, mininterval=every, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if b.total != total:
            b.total = total
        b.update(done - b.n)

    with _ticking(b, every):
        yield update
