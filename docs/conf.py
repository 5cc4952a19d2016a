"""Sphinx configuration for the trio_udpchat documentation."""

import sys
from pathlib import Path

from trio_udpchat import __version__

# The reference tables are generated from the code by our own extension.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "trio_udpchat"
author = "the trio_udpchat developers"
release = __version__
extensions = ["sphinx.ext.autodoc", "udpchat_docs"]
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
