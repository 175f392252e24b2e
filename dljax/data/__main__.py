"""Data set tools: `python -m dljax.data SUBCOMMAND ...`; `--help` lists the subcommands.

prepare NAME --from DIR [--data_dir OUT] [--force] [--partial]: writes TFDS data set NAME
(mnist, fashion_mnist, cifar10; clocks: the course's images.npy and labels.npy; tiny_imagenet:
the tiny-imagenet-200 folder or zip; imdb_reviews: the labelled reviews as
aclImdb-{train,test}.jsonl.gz) from its original files in DIR, without internet, into OUT
(default: $DLJAX_DATA_DIR, else ~/tensorflow_datasets).
--force prepares a prepared data set again; --partial accepts splits of other sizes than the
TFDS catalogue's (mnist, fashion_mnist, cifar10, imdb_reviews), e.g. a small test subset.

prepare image_folder --from DIR [--size 64] [--channels 3] [--name NAME]: a folder of images
(or of class sub-folders of images), resized and centre-cropped (dljax/data/image_folder.py).

show clocks [--size 64 --difficulty 1 --seed 0 --count 32 --out clocks.png]: writes a PNG grid
of the first clocks of a rendered clocks data set, titled with their times.

A data error (missing or corrupt files, ...) or a bad value (a clock size < 8, ...) prints one
line and exits with status 2 (as argparse does for a bad argument).
"""

import argparse
import dataclasses
import sys
from collections.abc import Callable

from dljax.data import clock_render, clocks, image_folder, imdb, prepare, raw, tiny_imagenet
from dljax.errors import ConfigError, exit_status


@dataclasses.dataclass(frozen=True)
class Subcommand:
  help: str
  add_arguments: Callable[[argparse.ArgumentParser], None]
  run: Callable[[argparse.Namespace], None]


def _prepare_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("name", choices=sorted([*raw.ORIGINALS, clocks.NAME, tiny_imagenet.NAME,
                                               imdb.NAME, image_folder.NAME]),
                      help="TFDS data set to prepare")
  parser.add_argument(
      "--from", dest="source_dir", required=True, metavar="DIR",
      help="directory with the original files: the four IDX .gz files for mnist and "
           "fashion_mnist, cifar10-train-1..5.npz and cifar10-test.npz for cifar10, "
           "images.npy and labels.npy for clocks, the tiny-imagenet-200 folder or zip for "
           "tiny_imagenet, aclImdb-{train,test}.jsonl.gz for imdb_reviews")
  parser.add_argument("--data_dir", metavar="OUT",
                      help="TFDS data directory (default: $DLJAX_DATA_DIR, else the TFDS default)")
  parser.add_argument("--force", action="store_true",
                      help="prepare again over a prepared copy (kept until the new one is done)")
  parser.add_argument("--partial", action="store_true",
                      help="accept splits of other sizes than the TFDS catalogue's (a subset, "
                           "test data); only for mnist, fashion_mnist, cifar10, imdb_reviews")
  for flag, kind, what in (("--size", int, "image height and width (default 64)"),
                           ("--channels", int, "3 = RGB (default), 1 = grey"),
                           ("--name", str, "the data set's name (default: the folder's)")):
    parser.add_argument(flag, type=kind, dest=f"folder_{flag[2:]}",
                        help=f"{image_folder.NAME} only: {what}")


def _prepare(args: argparse.Namespace) -> None:
  folder_options = {key.removeprefix("folder_"): value for key, value in vars(args).items()
                    if key.startswith("folder_") and value is not None}
  if args.name == image_folder.NAME:
    if args.partial:
      raise ConfigError(f"--partial: {image_folder.NAME} has no catalogue sizes to differ from")
    image_folder.prepare_folder(args.source_dir, args.data_dir, force=args.force,
                                **folder_options)
  elif folder_options:
    raise ConfigError(f"--{next(iter(folder_options))}: only for {image_folder.NAME}")
  elif args.name == imdb.NAME:
    imdb.prepare(args.source_dir, args.data_dir, force=args.force, partial=args.partial)
  elif args.name in raw.ORIGINALS:
    prepare.prepare(args.name, args.source_dir, args.data_dir, force=args.force,
                    partial=args.partial)
  elif args.partial:
    raise ConfigError(f"--partial: {args.name} has no catalogue sizes to differ from; "
                      f"allowed for {', '.join(raw.ORIGINALS)}")
  elif args.name == tiny_imagenet.NAME:
    tiny_imagenet.prepare(args.source_dir, args.data_dir, force=args.force)
  else:
    clocks.prepare_course(args.source_dir, args.data_dir, force=args.force)


def _show_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("name", choices=[clocks.NAME], help="data set to show")
  parser.add_argument("--size", type=int, default=clock_render.DEFAULT_SIZE,
                      help="image size in pixels")
  parser.add_argument("--difficulty", type=float, default=1.0,
                      help="0 = one clean clock style, 1 = the full variety")
  parser.add_argument("--seed", type=int, default=0, help="which data set")
  parser.add_argument("--count", type=int, default=32, help="clocks to show")
  parser.add_argument("--out", default="clocks.png", help="PNG file to write")


def _show(args: argparse.Namespace) -> None:
  clocks.show(args.out, args.size, args.difficulty, args.seed, args.count)


SUBCOMMANDS = {
    "prepare": Subcommand("prepare a TFDS data set offline from its original files",
                          _prepare_arguments, _prepare),
    "show": Subcommand("write a PNG grid of a data set's first examples", _show_arguments,
                       _show),
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
  return exit_status(parser.prog, lambda: SUBCOMMANDS[args.command].run(args))


if __name__ == "__main__":
  sys.exit(main())
