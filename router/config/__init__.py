"""Router configuration: typed models and the YAML loader.

- :mod:`router.config.base`: the leaf every section model builds on (``StrictModel``,
  ``JurisdictionName``, ``ClusterConfig``);
- :mod:`router.config.models`: :class:`~router.config.models.RouterConfig`, which assembles the
  sections that live with their concepts (``router/keys/config.py``, ``router/pipeline/config.py``, ...);
- :mod:`router.config.loader`: ``load_config`` and ``parse_config``.

Nothing is imported here: a section imports ``router.config.base``, which runs this file first, and
an import of the models from here would close a circle through every section.
"""
