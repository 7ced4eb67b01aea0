"""Progress bars: widgets in JupyterLab and text in a terminal (tqdm.autonotebook), none where
FCT_PROGRESS=0 (the notebooks `fct reproduce` executes: their saved copies would keep a bar per
epoch; tqdm's own TQDM_DISABLE does not reach its notebook bars).

Not `tqdm.auto`: its asyncio layer calls `iter()` on the iterable when the bar is made, so a
DataLoader would draw one epoch's shuffle before the loop draws another."""

from __future__ import annotations

import os
import warnings

from tqdm import TqdmExperimentalWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", category=TqdmExperimentalWarning)
    from tqdm.autonotebook import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    """A bar over `iterable` (tqdm's keywords), switched off when FCT_PROGRESS=0."""
    if os.environ.get("FCT_PROGRESS") == "0":
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
