"""One module per model-update method: its maths, the artifacts it trains, its cases and its
compatibility criterion. Importing this package imports every module in this folder, so each
method registers itself (`registry`): the folder is the only list of methods, and each method
states its place in the tables (`order`)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
