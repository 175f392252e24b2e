"""Character- and word-level language models (family C): next-token cross-entropy, sampling,
BLEU.

The model (`lstm_lm`, dljax/models/lstm.py) reads a window's first T ids and predicts the next
id at every step; a token is a character or a word (`config.data.text.tokens`, dljax/data/
text.py). Metrics are counted over tokens, not averaged per window: eval_step gives each
window's summed negative log-likelihood, its number of counted targets and of correct argmax
predictions, and `finalize` divides the split's sums:

    loss = sum nll / tokens (nats per token), perplexity = e ** loss,
    bits_per_char = loss / ln 2 (per word for word tokens), accuracy = correct / tokens.

Sampling runs inside jit: the prompt is read in one pass, then `lax.scan` feeds each drawn token
back with the LSTM states, drawing from softmax(logits / T); T = 0 takes the argmax (greedy).
One key gives one text, whatever the temperature. At each evaluation an evaluator writes a
sample per temperature of `config.language_model.temperatures` into samples/samples/ and
TensorBoard. After testing, `analyze` continues `bleu.prompts` prompts from the held-out text at
each of `bleu.temperatures` and scores the continuations against the text that really follows:
corpus BLEU (sacrebleu, on the words) and the mean of nltk's sentence BLEU with smoothing
(method1, the course's 4-gram uniform weights), into bleu.json and bleu.png.
"""

import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dljax import models
from dljax.data import Splits, text
from dljax.errors import ConfigError, require
from dljax.tasks import sequence
from dljax.tasks.task import Task


def task_config() -> ml_collections.ConfigDict:
  """`config.language_model`: what the evaluator samples and what `analyze` scores."""
  return ml_collections.ConfigDict(dict(
      prompt="",  # '' = the held-out text's first `prompt_length` tokens
      prompt_length=32,
      sample_length=300,  # tokens drawn per sample
      temperatures=(0.2, 0.5, 1.0),  # a sample at each, at every evaluation
      bleu=dict(
          prompts=64,  # held-out passages, evenly spaced, continued at every temperature
          prompt_length=100,  # tokens of each passage given as the prompt
          length=100,  # tokens generated and compared with what follows
          temperatures=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5),
      ),
  ))


def validate(config: ml_collections.ConfigDict) -> None:
  text.options(config.data)
  choices = config.language_model
  for key in ("prompt_length", "sample_length"):
    require(choices[key] > 0, f"language_model.{key}", choices[key], "must be > 0")
  for key in ("prompts", "prompt_length", "length"):
    require(choices.bleu[key] > 0, f"language_model.bleu.{key}", choices.bleu[key],
            "must be > 0")
  for key, values in (("temperatures", choices.temperatures),
                      ("bleu.temperatures", choices.bleu.temperatures)):
    require(all(t >= 0 for t in values), f"language_model.{key}", values,
            "temperatures must be >= 0 (0 = argmax)")


def finalize(totals: dict, count) -> dict:
  """The split's (or batch's) metrics from summed nll, tokens and correct predictions."""
  del count
  loss = totals["nll"] / totals["tokens"]
  return {"loss": loss, "perplexity": math.e ** loss, "bits_per_char": loss / math.log(2),
          "accuracy": totals["correct"] / totals["tokens"]}


def token_values(logits_BTV: jax.Array, targets_BT: jax.Array,
                 mask_BT: jax.Array) -> dict[str, jax.Array]:
  """Per-window sums over the counted targets: nll, tokens and correct argmax predictions."""
  mask_BT = mask_BT.astype(jnp.float32)
  nll_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, targets_BT)
  correct_BT = (logits_BTV.argmax(-1) == targets_BT).astype(jnp.float32)
  return {"nll": (nll_BT * mask_BT).sum(-1), "tokens": mask_BT.sum(-1),
          "correct": (correct_BT * mask_BT).sum(-1)}


def pick(rng: jax.Array, logits_BV: jax.Array, temperature: jax.Array) -> jax.Array:
  """A token per row drawn from softmax(logits / temperature); the argmax at temperature 0."""
  drawn = jax.random.categorical(rng, logits_BV / jnp.maximum(temperature, 1e-6))
  return jnp.where(temperature > 0, drawn, logits_BV.argmax(-1))


def sampler(model, num_tokens: int):
  """sample(params, prompt_BP, rng, temperature, length) -> the next `length` ids [B, length],
  compiled once per prompt shape and length (the temperature is traced). Only the first
  `num_tokens` outputs are drawn from: a model may have more than the text's vocabulary."""
  @functools.partial(jax.jit, static_argnames="length")
  def sample(params, prompt_BP, rng, temperature, length):
    logits_BPV, carries = model.apply({"params": params}, prompt_BP)

    def step(state, rng_t):
      logits_BV, carries = state
      token_B = pick(rng_t, logits_BV[:, :num_tokens], temperature)
      logits_B1V, carries = model.apply({"params": params}, token_B[:, None], carries)
      return (logits_B1V[:, 0], carries), token_B

    _, tokens_LB = jax.lax.scan(step, (logits_BPV[:, -1], carries),
                                jax.random.split(rng, length))
    return tokens_LB.T

  return sample


def bleu_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
  """Corpus BLEU (sacrebleu, 0-100) and the mean smoothed sentence BLEU (nltk, scaled to 0-100)
  of each hypothesis against its one reference, both on whitespace-separated words."""
  import nltk.translate.bleu_score  # here: at import nltk cost every run ~1.8 s of start-up
  import sacrebleu

  smooth = nltk.translate.bleu_score.SmoothingFunction().method1
  sentence = [nltk.translate.bleu_score.sentence_bleu([ref.split()], hyp.split(),
                                                      smoothing_function=smooth)
              for hyp, ref in zip(hypotheses, references, strict=True)]
  return {"sacrebleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
          "nltk_sentence_bleu": 100.0 * float(np.mean(sentence))}


def build(config: ml_collections.ConfigDict, data: Splits, total_steps: int) -> Task:
  """The language-model Task of `config.model` on `config.data.text`'s file."""
  del data  # the windows come in batches; the vocabulary and held-out text from the file
  options = text.options(config.data)
  kind = options["tokens"]
  vocab = text.vocabulary(options["path"], kind, options["num_words"], options["test_fraction"])
  if len(vocab) > config.model.vocab_size:
    raise ConfigError(f"config.model.vocab_size={config.model.vocab_size}: "
                      f"{options['path']} has {len(vocab)} distinct {kind} tokens (with "
                      f"num_words={options['num_words']}); set it to >= {len(vocab)}")
  held_out = text.tokenize(text.split_text(options["path"], options["test_fraction"])[1], kind)
  span = config.language_model.bleu.prompt_length + config.language_model.bleu.length
  if len(held_out) < span:
    raise ConfigError(f"config.language_model.bleu: a prompt and its continuation take {span} "
                      f"tokens, the held-out text has {len(held_out)}")
  choices = config.language_model
  sample = sampler(models.build(config.model), len(vocab))
  prompt = text.tokenize(choices.prompt, kind) or held_out[:choices.prompt_length]
  prompt_1P = jnp.asarray(text.encode(prompt, vocab))[None]

  def draw(state, rng, artefacts):
    samples = []
    for temperature in choices.temperatures:
      ids = sample(state.params, prompt_1P, rng, temperature, choices.sample_length)[0]
      samples.append(f"T={temperature:g}: {text.join(prompt, kind)}|"
                     f"{text.decode(ids, vocab, kind)}")
    artefacts.text("samples", "\n\n".join(samples))
    return {}

  def analyze(state, outputs, examples, workdir):
    del outputs, examples
    scores = bleu_by_temperature(sample, state.params, held_out, vocab, kind, choices.bleu)
    with open(os.path.join(workdir, "bleu.json"), "w") as f:
      json.dump(scores, f, indent=1)
    plot_bleu(scores, os.path.join(workdir, "bleu.png"))
    return {f"{name}_T{row['temperature']:g}": row[name] for row in scores["rows"]
            for name in ("sacrebleu", "nltk_sentence_bleu")}

  return sequence.build(
      config, total_steps, inputs=lambda batch: batch["tokens"][:, :-1],
      values=lambda outputs, batch: token_values(outputs[0], batch["tokens"][:, 1:],
                                                 batch["mask"]),
      finalize=finalize, evaluators=(draw,), analyze=analyze)


def bleu_by_temperature(sample, params, held_out: list[str], vocab: tuple[str, ...], kind: str,
                        options: ml_collections.ConfigDict) -> dict:
  """Continuations of evenly spaced held-out passages (tokens of `kind`) at each temperature,
  scored by `bleu_scores` against the text that follows each passage (one fixed key: the same
  draws at every temperature)."""
  span = options.prompt_length + options.length
  count = min(options.prompts, max(len(held_out) // span, 1))
  starts = np.linspace(0, len(held_out) - span, count).astype(int)
  prompts_BP = jnp.asarray(np.stack([text.encode(held_out[s: s + options.prompt_length], vocab)
                                     for s in starts]))
  references = [text.join(held_out[s + options.prompt_length: s + span], kind) for s in starts]
  rows = []
  for temperature in options.temperatures:
    ids_BL = np.asarray(sample(params, prompts_BP, jax.random.key(0), temperature,
                               options.length))
    hypotheses = [text.decode(ids, vocab, kind) for ids in ids_BL]
    rows.append({"temperature": float(temperature), **bleu_scores(hypotheses, references),
                 "example": hypotheses[0]})
  return {"prompts": int(count), "prompt_length": options.prompt_length,
          "length": options.length, "rows": rows}


def plot_bleu(scores: dict, path: str) -> None:
  """Both BLEUs against the temperature."""
  rows = scores["rows"]
  from matplotlib.figure import Figure  # here: not in every run's start-up

  figure = Figure(figsize=(5, 3.5))
  axis = figure.subplots()
  for name, label in (("sacrebleu", "corpus BLEU (sacrebleu)"),
                      ("nltk_sentence_bleu", "mean sentence BLEU (nltk, smoothed)")):
    axis.plot([r["temperature"] for r in rows], [r[name] for r in rows], marker="o", label=label)
  axis.set_xlabel("temperature")
  axis.set_ylabel("BLEU")
  axis.set_title(f"{scores['prompts']} held-out prompts, {scores['length']} characters each")
  axis.grid(alpha=0.3)
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
