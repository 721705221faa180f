"""``python -m benchmarks [--quick | --full | --tiny] [options]``; see ``--help``."""

from benchmarks.cli import main

raise SystemExit(main())
