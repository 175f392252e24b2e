"""Reads TFDS data sets (prepared by a download or by `python -m dljax.data prepare`) into memory."""

import numpy as np
import tensorflow_datasets as tfds


def read_split(name: str, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
  """Returns every example of `name[split]` as numpy arrays with a leading example axis."""
  source = tfds.data_source(name, split=split, data_dir=data_dir)
  examples = [source[i] for i in range(len(source))]
  return {key: np.stack([example[key] for example in examples]) for key in examples[0]}
