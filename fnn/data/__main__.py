"""Command line: `python -m fnn.data {list,prepare}`.

    python -m fnn.data list [--data-dir DIR]
    python -m fnn.data prepare mnist cifar10 --data-dir DIR

`prepare` downloads and prepares TFDS datasets as array_record files on a machine with
internet; copy `DIR/<name>/` to the same place under a data dir of an offline machine and
load with `fnn.data.load(name, data_dir=DIR)`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fnn.data import catalog
from fnn.data import tfds as tfds_source


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fnn.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list datasets and whether they load offline")
    listing.add_argument("--data-dir", default=None, help="TFDS data directory to check")
    prep = commands.add_parser(
        "prepare", help="download and prepare TFDS datasets (array_record) to copy offline"
    )
    prep.add_argument(
        "names", nargs="+", metavar="NAME", help=f"one of {sorted(tfds_source.TFDS_DATASETS)}"
    )
    prep.add_argument("--data-dir", default=None, help="TFDS data directory to write into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 1 data unavailable, 2 usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in catalog.list_datasets():
            d = catalog.info(name)
            ok = "yes" if catalog.is_available(name, args.data_dir) else "no (prepare it)"
            print(f"{name:18} {d.source:9} {d.task:14} {str(d.input_shape):12} offline: {ok}")
        return 0
    bad = [n for n in args.names if n not in tfds_source.TFDS_DATASETS]
    if bad:
        parser.error(
            f"NAME: expected TFDS datasets among {sorted(tfds_source.TFDS_DATASETS)}, got {bad} "
            "(bundled and synthetic datasets need no preparing)"
        )
    for name in args.names:
        try:
            path = tfds_source.prepare(name, data_dir=args.data_dir)
        except tfds_source.DataUnavailableError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{name}: prepared in {path}")
    if args.data_dir is not None:
        print(
            f"Copy {args.data_dir} (or its dataset folders) to the offline machine and pass "
            "data_dir=... to fnn.data.load (or set TFDS_DATA_DIR)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
