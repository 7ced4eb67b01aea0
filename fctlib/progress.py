"""Progress bars: widgets in JupyterLab and text in a terminal (tqdm.auto), none where
FCT_PROGRESS=0 (the notebooks `fct reproduce` executes: their saved copies would keep a bar per
epoch; tqdm's own TQDM_DISABLE does not reach its notebook bars)."""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    """tqdm.auto's bar over `iterable` (tqdm's keywords), switched off when FCT_PROGRESS=0."""
    if os.environ.get("FCT_PROGRESS") == "0":
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
