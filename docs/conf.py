"""Sphinx configuration for the trio_udpchat documentation."""

from trio_udpchat import __version__

project = "trio_udpchat"
author = "the trio_udpchat developers"
release = __version__
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
