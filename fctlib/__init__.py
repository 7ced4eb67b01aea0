"""fctlib: the tested core of fct-suite (forward compatible training of embedding models)."""

__version__ = "0.1.0"
