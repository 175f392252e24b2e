"""Data set tools: `python -m dljax.data SUBCOMMAND ...`; `--help` lists the subcommands.

prepare NAME --from DIR [--data_dir OUT]: writes TFDS data set NAME (mnist, fashion_mnist,
cifar10) from its original files in DIR, without internet, into OUT (default: $DLJAX_DATA_DIR,
else ~/tensorflow_datasets).

A data error (missing or corrupt files, ...) prints one line and exits with status 1.
"""

import argparse
import dataclasses
import sys
from collections.abc import Callable

from dljax.data import prepare, raw
from dljax.errors import DataError


@dataclasses.dataclass(frozen=True)
class Subcommand:
  help: str
  add_arguments: Callable[[argparse.ArgumentParser], None]
  run: Callable[[argparse.Namespace], None]


def _prepare_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("name", choices=sorted(raw.ORIGINALS), help="TFDS data set to prepare")
  parser.add_argument(
      "--from", dest="source_dir", required=True, metavar="DIR",
      help="directory with the original files: the four IDX .gz files for mnist and "
           "fashion_mnist, cifar10-train-1..5.npz and cifar10-test.npz for cifar10")
  parser.add_argument("--data_dir", metavar="OUT",
                      help="TFDS data directory (default: $DLJAX_DATA_DIR, else the TFDS default)")


def _prepare(args: argparse.Namespace) -> None:
  prepare.prepare(args.name, args.source_dir, args.data_dir)


SUBCOMMANDS = {
    "prepare": Subcommand("prepare a TFDS data set offline from its original files",
                          _prepare_arguments, _prepare),
}


def main(argv: list[str] | None = None) -> int:
  """Runs the subcommand named in `argv` (default: sys.argv[1:]); returns the exit status."""
  parser = argparse.ArgumentParser(prog="python -m dljax.data", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
  for name, subcommand in SUBCOMMANDS.items():
    subcommand.add_arguments(subparsers.add_parser(name, help=subcommand.help,
                                                   description=subcommand.help))
  args = parser.parse_args(argv)
  try:
    SUBCOMMANDS[args.command].run(args)
  except DataError as error:
    print(f"{parser.prog}: error: {error}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
