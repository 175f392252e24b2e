"""Family C: the LSTM against its formulas, text and IMDB tokenisation against hand-worked
examples, language-model metrics as ratios of sums, sampling, BLEU, GloVe, one-line errors and
smoke runs of the char LM and the IMDB configs."""

import gzip
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dljax
from dljax import config_lib, models, train
from dljax.data import airline, imdb, text
from dljax.errors import ConfigError, DataError
from dljax.models import lstm
from dljax.tasks import language_model, sentiment, time_series
from tests.conftest import REPO, run_main


def reference_lstm(x_BTD, kernel, recurrent, bias, mask_BT, reverse):
  """Keras' LSTM step by step in numpy: gates i, f, c, o; a masked step keeps the state."""
  batch, steps, _ = x_BTD.shape
  units = recurrent.shape[0]
  h, c = np.zeros((batch, units)), np.zeros((batch, units))
  outputs = np.zeros((batch, steps, units))
  sigmoid = lambda z: 1 / (1 + np.exp(-z))
  for t in (reversed(range(steps)) if reverse else range(steps)):
    z = x_BTD[:, t] @ kernel + h @ recurrent + bias
    i, f, g, o = np.split(z, 4, axis=-1)
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h_new = sigmoid(o) * np.tanh(c_new)
    keep = mask_BT[:, t, None]
    h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
    outputs[:, t] = np.where(keep, h_new, 0.0)
  return outputs, h


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_matches_keras_formulas_with_a_mask_in_both_directions(reverse):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 6, 5)).astype(np.float32)
  mask = np.ones((3, 6), bool)
  mask[1, :2] = False  # pre-padding, as Keras' pad_sequences
  layer = lstm.LSTM(4, reverse=reverse)
  params = jax.jit(layer.init)(jax.random.key(0), x)["params"]
  assert {k: v.shape for k, v in params.items()} == {
      "kernel": (5, 16), "recurrent_kernel": (4, 16), "bias": (16,)}
  np.testing.assert_array_equal(params["bias"][4:8], 1.0)  # unit_forget_bias
  outputs, (h, _) = jax.jit(layer.apply)({"params": params}, x, mask_BT=mask)
  expected, expected_h = reference_lstm(x, *(np.asarray(params[k], np.float64) for k in (
      "kernel", "recurrent_kernel", "bias")), mask, reverse)
  np.testing.assert_allclose(outputs, expected, atol=1e-5)
  np.testing.assert_allclose(h, expected_h, atol=1e-5)


def test_bidirectional_concatenates_the_forward_and_backward_last_states():
  x = np.random.default_rng(1).normal(size=(2, 5, 3)).astype(np.float32)
  layer = lstm.Bidirectional(4)
  params = jax.jit(layer.init)(jax.random.key(0), x)["params"]
  outputs, last = jax.jit(layer.apply)({"params": params}, x)
  forward = jax.jit(lstm.LSTM(4).apply)({"params": params["forward"]}, x)
  backward = jax.jit(lstm.LSTM(4, reverse=True).apply)({"params": params["backward"]}, x)
  np.testing.assert_allclose(last, np.concatenate([forward[1][0], backward[1][0]], -1), atol=1e-6)
  np.testing.assert_allclose(outputs, np.concatenate([forward[0], backward[0]], -1), atol=1e-6)
  np.testing.assert_allclose(last[:, 4:], outputs[:, 0, 4:], atol=1e-6)  # backward ends at t=0


def test_char_vocabulary_ids_and_windows_by_hand(tmp_path):
  path = tmp_path / "t.txt"
  path.write_text("abcabca")
  vocab = text.vocabulary(str(path))
  assert vocab == ("a", "b", "c")
  ids = text.encode("abcabca", vocab)
  np.testing.assert_array_equal(ids, [0, 1, 2, 0, 1, 2, 0])
  assert text.decode(ids, vocab) == "abcabca"
  # seq_len 4: targets 1..6 each once; the second window holds 2 real targets, padded to 4.
  windows = text.windows(ids, seq_len=4, stride=4)
  np.testing.assert_array_equal(windows["tokens"], [[0, 1, 2, 0, 1], [1, 2, 0, 0, 0]])
  np.testing.assert_array_equal(windows["mask"], [[1, 1, 1, 1], [1, 1, 0, 0]])
  overlapping = text.windows(ids, seq_len=4, stride=2)
  np.testing.assert_array_equal(overlapping["tokens"][:, 0], [0, 2, 1])
  assert text.split_text(str(path), 0.3) == ("abcab", "ca")


def test_word_tokens_vocabulary_and_text_by_hand(tmp_path):
  path = tmp_path / "w.txt"
  path.write_text("a b, a c\nb a.\nd e")  # 17 characters: the first 12 are the train part
  assert text.split_text(str(path), 0.3) == ("a b, a c\nb a", ".\nd e")
  assert text.tokenize("o'er the lea,\n  she", "word") == ["o'er", "the", "lea", ",", "\n", "she"]
  # Train counts a 3, b 2, then '\n' ',' 'c' once each (ties by code point); '<unk>' is id 0.
  vocab = text.vocabulary(str(path), "word", 0, 0.3)
  assert vocab == ("<unk>", "a", "b", "\n", ",", "c")
  assert text.vocabulary(str(path), "word", 4, 0.3) == ("<unk>", "a", "b", "\n")
  ids = text.encode(text.tokenize(".\nd e a", "word"), vocab)  # '.', 'd', 'e' never trained
  np.testing.assert_array_equal(ids, [0, 3, 0, 0, 1])
  assert text.join(["a", "b", ",", "a", "c", "\n", "b", "a", "."], "word") == "a b, a c\nb a."
  assert text.decode([1, 4, 2, 3, 5], vocab, "word") == "a, b\nc"


def test_word_language_model_smoke_run_samples_words(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("ROMEO: the night is long and the day is short.\n" * 40)
  config = config_lib.load(os.path.join(REPO, "configs/char_lm.py:smoke,tokens=word"))
  config.data.text.path = str(corpus)
  config.optimizer.learning_rate = 0.03
  # The text's 10 words and '<unk>' as the vocabulary (the config's 10,000 outputs would take
  # more than the smoke run's steps to leave uniform), and enough steps to learn their order.
  config.model.vocab_size = config.data.text.num_words = 16
  config.num_epochs = 10.0
  results = train.run(config, str(tmp_path / "lm"))
  assert results["test"]["loss"] < np.log(12)  # below uniform over the text's 11 words + <unk>
  samples = sorted((tmp_path / "lm" / "samples" / "samples").iterdir())[-1].read_text()
  corpus_words = {"ROMEO", "the", "night", "is", "long", "and", "day", "short"}
  assert set(re.findall(r"[\w']+", samples.split("|", 1)[1])) & corpus_words  # words drawn
  assert set(re.findall(r"[\w']+", samples)) <= corpus_words | {"T", "0", "1", "unk"}


@pytest.mark.parametrize("content, message", [
    (b"", r"the text file is empty$"),
    (b"ab\xff", r"not UTF-8 text \(byte 2: 0xff\)$"),
])
def test_an_empty_or_non_utf8_text_file_is_one_line(content, message, tmp_path):
  path = tmp_path / "bad.txt"
  path.write_bytes(content)
  with pytest.raises(DataError, match=f"^{re.escape(str(path))}: {message}"):
    text.read(str(path))


def test_metrics_are_ratios_of_token_sums_not_means_of_window_means():
  logits = jnp.log(jnp.array([[[0.5, 0.5], [0.9, 0.1]], [[0.2, 0.8], [0.5, 0.5]]]))
  targets = jnp.array([[0, 0], [0, 0]])
  mask = jnp.array([[1, 1], [1, 0]])  # the second window counts one token
  values = language_model.token_values(logits, targets, mask)
  np.testing.assert_allclose(values["nll"], [np.log(2) - np.log(0.9), -np.log(0.2)], rtol=1e-6)
  np.testing.assert_array_equal(values["tokens"], [2, 1])
  metrics = language_model.finalize({k: float(v.sum()) for k, v in values.items()}, 2)
  loss = (np.log(2) - np.log(0.9) - np.log(0.2)) / 3  # a mean of window means: 1.03, not 0.88
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
  np.testing.assert_allclose(metrics["perplexity"], np.exp(loss), rtol=1e-6)
  np.testing.assert_allclose(metrics["bits_per_char"], loss / np.log(2), rtol=1e-6)
  np.testing.assert_allclose(metrics["accuracy"], 2 / 3, rtol=1e-6)  # a tie's argmax is 0


def test_sampling_is_deterministic_per_key_and_turns_greedy_as_the_temperature_falls():
  model = models.build(config_lib.load(os.path.join(REPO, "configs/char_lm.py:smoke")).model)
  prompt = jnp.array([[1, 2, 3], [4, 5, 6]])
  params = jax.jit(model.init)(jax.random.key(0), prompt)["params"]
  sample = language_model.sampler(model, model.vocab_size)
  apply = jax.jit(model.apply)
  draw = lambda seed, t: np.asarray(sample(params, prompt, jax.random.key(seed), t, 12))
  assert draw(0, 0.0).shape == (2, 12)
  np.testing.assert_array_equal(draw(0, 1.0), draw(0, 1.0))
  assert not np.array_equal(draw(0, 1.0), draw(1, 1.0))
  # Greedy by hand: the argmax fed back one step at a time.
  logits, carries = apply({"params": params}, prompt)
  greedy = []
  for _ in range(12):
    token = logits[:, -1].argmax(-1)
    greedy.append(token)
    logits, carries = apply({"params": params}, token[:, None], carries)
  np.testing.assert_array_equal(draw(0, 0.0), np.stack(greedy, 1))
  for seed in range(3):
    np.testing.assert_array_equal(draw(seed, 1e-4), draw(0, 0.0))


def test_bleu_of_identical_texts_is_100_and_of_disjoint_texts_is_near_0():
  texts = ["the quick brown fox jumps over the lazy dog", "to be or not to be that is it"]
  assert language_model.bleu_scores(texts, texts) == pytest.approx(
      {"sacrebleu": 100.0, "nltk_sentence_bleu": 100.0})
  scores = language_model.bleu_scores(["a b c d e f", "g h i j k l"], texts)
  assert scores["sacrebleu"] < 1 and scores["nltk_sentence_bleu"] < 1


def test_imdb_words_and_ids_as_keras_by_hand():
  assert imdb.words("Great movie!<br />It's GREAT, isn't it?") == [
      "great", "movie", "br", "it's", "great", "isn't", "it"]
  ranking = imdb.ranked_words(["b a b", "c b a", "d"])
  assert ranking == ["b", "a", "c", "d"]  # counts 3, 2, 1, 1; ties alphabetical
  # rank r -> id r + 3; ids >= num_words=7 (ranks >= 4: 'd') -> 2; start 1; pre-pad, pre-cut.
  ids = imdb.to_ids(["b a d", "c c b a b"], ranking, num_words=7, maxlen=5)
  np.testing.assert_array_equal(ids, [[0, 1, 4, 5, 2], [6, 6, 4, 5, 4]])
  assert imdb.vocabulary(ranking, 7) == ["<pad>", "<start>", "<unk>", "<unused>", "b", "a", "c"]


def test_ngram_ids_by_hand_the_most_frequent_train_ngrams_and_padding_for_the_rest():
  ids = np.array([[0, 1, 5, 7, 5, 7], [0, 0, 1, 5, 7, 9]])
  # Bigram keys in base 10 (none with padding): 57 three times, 15 twice, 75 and 79 once.
  table = imdb.ngram_table(ids, ngrams=2, num_ngrams=3, num_words=10)
  np.testing.assert_array_equal(table, [57, 15, 75])  # the tie 75 / 79 by key
  np.testing.assert_array_equal(imdb.with_ngrams(ids, table, ngrams=2, num_words=10),
                                [[0, 1, 5, 7, 5, 7, 0, 11, 10, 12, 10],
                                 [0, 0, 1, 5, 7, 9, 0, 0, 11, 10, 0]])  # 79 not kept: 0
  # Trigrams join the one ranking; their keys (>= 100) never meet a bigram's.
  np.testing.assert_array_equal(imdb.ngram_table(ids, ngrams=3, num_ngrams=10, num_words=10),
                                [57, 15, 157, 75, 79, 575, 579, 757])


def test_glove_rows_replace_the_vocabulary_words_found(tmp_path):
  glove = tmp_path / "glove.txt"
  glove.write_text("good 1 2\nzebra 3 4\nbad 5 6\n")
  vocabulary = imdb.vocabulary(["good", "bad", "film"], 7)
  rows, vectors = sentiment.glove_rows(str(glove), vocabulary)
  table = sentiment.with_rows(jnp.zeros((7, 2)), rows, vectors, str(glove))
  np.testing.assert_array_equal(table[4:], [[1, 2], [5, 6], [0, 0]])
  with pytest.raises(ConfigError, match=r"vectors of 2 values, the model's embedding has 3"):
    sentiment.with_rows(jnp.zeros((7, 3)), rows, vectors, str(glove))
  assert sentiment.nearest(np.array([[0, 0]] * 4 + [[1, 0], [-1, 0], [1, 0.1]]), vocabulary,
                           "good", 2) == ["film", "bad"]


def _sentiment_config(**overrides):
  config = config_lib.load(os.path.join(REPO, "configs/imdb_sentiment.py:smoke"))
  for key, value in overrides.items():
    config_lib.override(config, key, value)
  return config


@pytest.mark.parametrize("overrides, message", [
    ({"data.imdb.num_words": 0},
     r"config.data.imdb.num_words=0: the vocabulary size must be > 4 \(ids 0-3 are reserved\)"),
    ({"sentiment.glove": "/nonexistent/glove.txt"},
     r"config.sentiment.glove='/nonexistent/glove.txt': no such GloVe file"),
    ({"model.vocab_size": 60}, r"config.model.vocab_size=60: must equal "
                               r"config.data.imdb.num_words=50"),
    ({"model.num_ngrams": 60}, r"config.model.num_ngrams=60: must equal "
                               r"config.data.imdb.num_ngrams=64"),
    ({"data.imdb.num_ngrams": 0}, r"config.data.imdb.num_ngrams=0: must be > 0 with ngrams=2 "
                                  r"> 1, and 0 with ngrams=1"),
])
def test_bad_sentiment_configs_are_one_line_errors(overrides, message):
  with pytest.raises(ConfigError, match=f"^{message}$"):
    config_lib.validate(_sentiment_config(**overrides))


def _write_reviews(directory, split: str, count: int, seed: int) -> None:
  rng = np.random.default_rng(seed)
  words = {0: ["bad", "boring", "awful"], 1: ["good", "great", "fun"]}
  with gzip.open(directory / f"aclImdb-{split}.jsonl.gz", "wt") as f:
    for index in range(count):
      label = int(rng.integers(2))
      review = " ".join(rng.choice(words[label] + ["the", "movie", "was"], 8))
      f.write(json.dumps({"text": review.capitalize() + ".", "label": label,
                          "id": f"{index}_{7 if label else 2}.txt"}) + "\n")


def test_imdb_prepares_offline_and_the_smoke_config_learns_it(tmp_path):
  source = tmp_path / "jsonl"
  source.mkdir()
  for split, count, seed in (("train", 64, 0), ("test", 32, 1)):
    _write_reviews(source, split, count, seed)
  data_dir = str(tmp_path / "tfds")
  with pytest.raises(DataError, match=r"has 64 reviews, the TFDS catalogue's has 25000"):
    imdb.prepare(str(source), data_dir)
  imdb.prepare(str(source), data_dir, partial=True)
  glove = tmp_path / "glove.txt"
  glove.write_text("good 1 1 1 1\nbad -1 -1 -1 -1\n")
  # Frozen GloVe rows: 'good' and 'bad' alone carry the sentiment, the Dense layer learns it.
  config = _sentiment_config(**{"data.dir": data_dir, "sentiment.glove": str(glove),
                                "optimizer.freeze": "embedding", "num_epochs": 4.0,
                                "optimizer.learning_rate": 0.05})
  workdir = str(tmp_path / "run")
  results = train.run(config, workdir)
  assert results["test"]["accuracy"] > 0.8
  probes = json.loads((tmp_path / "run" / "probes.json").read_text())
  assert set(probes["p_positive"]) == set(config.sentiment.probe_phrases)
  assert probes["nearest_by_cosine"]["good"][0] != "good"
  vocabulary = imdb.load_vocabulary(config.data)
  assert vocabulary[:4] == ["<pad>", "<start>", "<unk>", "<unused>"]
  run = dljax.load(workdir)
  table = np.asarray(run.state.params["embedding"]["embedding"])
  np.testing.assert_array_equal(table[vocabulary.index("good")], [1, 1, 1, 1])
  reviews = imdb.encode(["good good fun", "bad awful bad"], config.data)  # words and n-grams
  assert [row["class"] for row in run.describe(run.predict({"tokens": reviews}))] == [
      "pos", "neg"]


def test_char_lm_smoke_run_writes_samples_and_bleu(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("ROMEO: the night is long and the day is short.\n" * 40)
  workdir = tmp_path / "lm"
  result = run_main("--config=configs/char_lm.py:smoke", f"--workdir={workdir}",
                    f"--config.data.text.path={corpus}", "--config.optimizer.learning_rate=0.03",
                    timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  results = json.loads((workdir / "results.json").read_text())
  assert results["test"]["loss"] < np.log(65)  # below uniform over the outputs
  np.testing.assert_allclose(results["test"]["perplexity"], np.exp(results["test"]["loss"]),
                             rtol=1e-5)
  samples = sorted((workdir / "samples" / "samples").iterdir())
  assert samples and "T=0: " in samples[-1].read_text()
  bleu = json.loads((workdir / "bleu.json").read_text())
  assert [row["temperature"] for row in bleu["rows"]] == [0.0, 1.0]
  assert (workdir / "bleu.png").stat().st_size > 0


def _series_csv(tmp_path, count: int) -> str:
  path = tmp_path / "series.csv"
  path.write_text('"Month","Passengers"\n' + "".join(
      f'"19{49 + i // 12}-{i % 12 + 1:02d}",{100 + 10 * i}\n' for i in range(count)))
  return str(path)


def test_airline_windows_by_hand_scaled_by_the_train_part_only(tmp_path):
  values = {"path": _series_csv(tmp_path, 10), "window": 2, "test_fraction": 0.3}
  train, test, cut = airline.parts(values)
  assert (len(train), len(test), cut) == (7, 3, 7)
  assert airline.scaling(values) == (100.0, 160.0)  # the train part's 100 ... 160
  part = airline.windows(test, 2, cut, (100.0, 160.0))  # 170, 180, 190
  np.testing.assert_allclose(part["window"], [[70 / 60, 80 / 60]], rtol=1e-6)
  np.testing.assert_allclose(part["target"], [90 / 60], rtol=1e-6)
  np.testing.assert_array_equal(part["month"], [9])
  assert len(airline.windows(train, 2, 0, (100.0, 160.0))["target"]) == 5
  with pytest.raises(ConfigError, match=r"^config.data.airline.window=3: longer than the series "
                                        r"allows: the test part has 3 months, a window needs at "
                                        r"least one more$"):
    airline.parts({**values, "window": 3})


def test_airline_rmse_is_the_root_of_summed_squares_in_passengers():
  metrics = time_series.finalize({"squared_error": 0.5, "squared_error_passengers": 800.0}, 2)
  assert metrics == {"loss": 0.25, "rmse": 20.0}


def test_airline_smoke_run_writes_the_predictions_plot(tmp_path):
  config = config_lib.load(os.path.join(REPO, "configs/airline_lstm.py:smoke,window=3"))
  config.data.airline.path = _series_csv(tmp_path, 40)
  results = train.run(config, str(tmp_path / "run"))
  assert np.isfinite(results["test"]["rmse"]) and np.isfinite(results["test"]["train_rmse"])
  assert (tmp_path / "run" / "predictions.png").stat().st_size > 0
