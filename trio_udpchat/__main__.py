"""``python -m trio_udpchat``."""

from ._cli import main

raise SystemExit(main())
