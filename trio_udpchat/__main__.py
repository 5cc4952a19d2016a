"""``python -m trio_udpchat``."""

try:
    from ._cli import main
except KeyboardInterrupt:  # CTRL+C while Python was still importing: a clean exit too
    raise SystemExit(0) from None

raise SystemExit(main())
