"""Shared test set-up. pytest puts this folder on ``sys.path`` (no ``__init__.py``), so tests in sub-folders import
the phantom builders beside it: ``phantoms`` (anatomical chests, abdomen and head) and ``simple_chest`` (the small
analytic chest of the segmentation tests)."""
