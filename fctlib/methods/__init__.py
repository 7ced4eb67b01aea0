"""One module per model-update method: its maths, the artifacts it trains, its cases and its
compatibility criterion. Importing this package registers them all (`registry`); the order of
the imports is the order of the methods table, so they are kept out of import sorting."""
# isort: skip_file

from fctlib.methods import (  # noqa: F401
    independent,
    side_info,
    bct,
    fct,
    fastfill,
    projection,
    dsimplex,
    oca,
    fct_cross,
)
