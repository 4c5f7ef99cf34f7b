"""lungtrial: serial chest CT opacity, labs and outcomes of a clinical trial, compared between arms.

Submodules are imported on demand; importing :mod:`lungtrial` itself is cheap.
"""

__version__ = "0.1.0"
