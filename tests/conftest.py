"""Shared test set-up. The folders of tests/ mirror src/lungtrial (docs/architecture.md, "Tests"). pytest puts this
folder on ``sys.path`` (no ``__init__.py``), so tests in sub-folders import the helper modules beside it: ``phantoms``
(anatomical chests, abdomen and head), ``simple_chest`` (the small analytic chest of the segmentation tests),
``workflow_setup`` (running snakemake on a workspace) and ``clinical_sheets`` (small clinical sheets). Test modules
never import each other, and their basenames are unique across the folders."""
