"""PyTorch: the benchmark's models as `nn.Sequential`, trained by a plain idiomatic loop.

The loop a PyTorch user writes: `model.train()`, a `randperm` per epoch, batches indexed from
in-memory tensors (float32 in [0, 1], NCHW; no DataLoader, whose worker processes would only
add overhead for data already in memory), `zero_grad` / `cross_entropy` / `backward` / `step`,
and the loss and accuracy summed on tensors and read once per epoch (no per-step `.item()` sync,
as dljax and Keras compute both each step without syncing). The last partial batch is dropped,
as dljax does. Set up for CPU speed:

- `torch.set_num_threads(os.cpu_count())` (or `--torch_threads`);
- `torch.set_flush_denormal(True)`: XLA flushes denormals to zero; PyTorch by default does not,
  and denormal optimiser state slowed its RMSprop epochs (stack-notes);
- Keras' initialisation (glorot_uniform kernels, zero biases) instead of PyTorch's default;
- Keras' optimiser arguments (RMSprop rho 0.9, eps 1e-7, ...), not PyTorch's defaults;
- optionally `torch.compile(model)` (Inductor, C++ codegen with the system gcc).

On a GPU (`device='gpu'`) the data, model and optimiser live on the first CUDA device and the
same loop runs there.

What is timed: steady-state examples/s over epochs 2.. (the `.item()` reads at an epoch's end
wait for its last step, on a GPU too); `compile_seconds` is the first step's wall time (on a GPU
up to its completion), which for `torch.compile` holds the Dynamo trace and Inductor
compilation of the forward and backward passes.
"""

import os
import time
from typing import Any

from bench.frameworks import common


def _layer(nn, layer: common.Layer, in_shape: tuple[int, ...]) -> list:
  """The spec layer in PyTorch modules, given its input shape (h, w, c) or (features,)."""
  fan_in = in_shape[-1]
  if layer.kind == "conv":
    return [nn.Conv2d(fan_in, int(layer.size), common.KERNEL_SIZE, padding=layer.padding),
            nn.ReLU()]
  if layer.kind == "dense":
    return [nn.Linear(fan_in, int(layer.size)), nn.ReLU()]
  if layer.kind == "logits":
    return [nn.Linear(fan_in, int(layer.size))]
  if layer.kind == "max_pool":
    return [nn.MaxPool2d(common.POOL_SIZE)]
  if layer.kind == "dropout":
    return [nn.Dropout(layer.size)]
  if layer.kind == "flatten":  # NCHW order, not Keras' NHWC: the same maths, rows permuted
    return [nn.Flatten()]
  if layer.kind == "global_avg_pool":
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
  raise ValueError(f"unknown layer kind {layer.kind!r}")


_OPTIMIZERS = {
    "RMSprop": lambda torch, params, a: torch.optim.RMSprop(
        params, lr=a["learning_rate"], alpha=a["rho"], eps=a["epsilon"]),
    "Adadelta": lambda torch, params, a: torch.optim.Adadelta(
        params, lr=a["learning_rate"], rho=a["rho"], eps=a["epsilon"]),
    "Adam": lambda torch, params, a: torch.optim.Adam(
        params, lr=a["learning_rate"], betas=(a["beta_1"], a["beta_2"]), eps=a["epsilon"]),
}


def _unet(torch, nn, spec: common.ModelSpec):
  """The UNet of `spec.unet` (dljax/models/unet.py, layer for layer; NCHW), He-normal kernels."""
  *features, bottleneck = spec.unet
  channels = spec.input_shape[-1]
  conv = lambda fan_in, units, kernel=common.KERNEL_SIZE: nn.Conv2d(fan_in, units, kernel,
                                                                    padding="same")

  class UNet(nn.Module):
    def __init__(self):
      super().__init__()
      fans = [channels, *features]
      self.down = nn.ModuleList(conv(fan_in, units)
                                for fan_in, units in zip(fans[:-1], features, strict=True))
      self.bottleneck = conv(features[-1], bottleneck)
      ups = [bottleneck, *reversed(features)]
      self.up = nn.ModuleList(conv(fan_in, units, common.UNET_UP_KERNEL)
                              for fan_in, units in zip(ups[:-1], reversed(features), strict=True))
      self.merge = nn.ModuleList(conv(2 * units, units) for units in reversed(features))
      self.out = conv(features[0], channels)
      self.dropout = nn.Dropout(common.UNET_DROPOUT)

    def forward(self, x):
      skips = []
      for level, down in enumerate(self.down):
        x = torch.relu(down(x))
        if level == len(self.down) - 1:
          x = self.dropout(x)
        skips.append(x)
        x = nn.functional.max_pool2d(x, common.POOL_SIZE)
      x = self.dropout(torch.relu(self.bottleneck(x)))
      for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
        x = torch.relu(up(nn.functional.interpolate(x, scale_factor=2, mode="nearest")))
        x = torch.relu(merge(torch.cat([skip, x], dim=1)))
      return self.out(x)

  model = UNet()
  for module in model.modules():
    if isinstance(module, nn.Conv2d):  # Keras' he_normal, and glorot_uniform for the output
      init = nn.init.xavier_uniform_ if module is model.out else nn.init.kaiming_normal_
      init(module.weight)
      nn.init.zeros_(module.bias)
  return model


def build(spec: common.ModelSpec, device: str = "cpu"):
  """The spec's model with Keras' initialisation on `device` (a torch device name), and its
  optimiser: (model, optimizer)."""
  import torch
  from torch import nn

  if spec.unet:
    model = _unet(torch, nn, spec)
  else:
    model = nn.Sequential(*(module for layer, in_shape, _ in common.walk(spec)
                            for module in _layer(nn, layer, in_shape)))
    for module in model.modules():
      if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
  model = model.to(device)
  optimizer = _OPTIMIZERS[spec.optimizer.name](torch, model.parameters(), spec.optimizer.args)
  return model, optimizer


def build_sequence(spec: common.SequenceSpec, device: str = "cpu"):
  """The spec's LSTM (`nn.Embedding`, `nn.Dropout`, `nn.LSTM(batch_first=True)`, `nn.Linear`)
  with Keras' initialisation on `device`, and its optimiser: (model, optimizer). Keras' LSTM
  dropout (on the LSTM's inputs) is an `nn.Dropout` before it; `nn.LSTM`'s second bias
  (`bias_hh`) is zero and frozen, as Keras has one. Ids are not masked: `nn.LSTM` has no mask
  (packing needs padding at the end, Keras pads in front), and the random ids hold no padding."""
  import torch
  from torch import nn

  class LSTMModel(nn.Module):
    def __init__(self):
      super().__init__()
      self.embedding = nn.Embedding(spec.vocab_size, spec.embedding)
      self.dropout = nn.Dropout(spec.dropout)
      self.lstm = nn.LSTM(spec.embedding, spec.units, batch_first=True)
      self.head = nn.Linear(spec.units, spec.vocab_size if spec.per_step else 1)

    def forward(self, ids):
      # Keras' Dropout layer, then the LSTM's own input dropout.
      h, _ = self.lstm(self.dropout(self.dropout(self.embedding(ids))))
      return self.head(self.dropout(h if spec.per_step else h[:, -1]))

  model = LSTMModel()
  with torch.no_grad():  # Keras: uniform(-0.05, 0.05), glorot, orthogonal, unit forget bias
    nn.init.uniform_(model.embedding.weight, -0.05, 0.05)
    nn.init.xavier_uniform_(model.lstm.weight_ih_l0)  # [4H, D]: Keras' fans
    nn.init.orthogonal_(model.lstm.weight_hh_l0)
    model.lstm.bias_ih_l0.zero_()
    model.lstm.bias_ih_l0[spec.units:2 * spec.units] = 1.0
    model.lstm.bias_hh_l0.zero_()
    nn.init.xavier_uniform_(model.head.weight)
    nn.init.zeros_(model.head.bias)
  model.lstm.bias_hh_l0.requires_grad_(False)
  model = model.to(device)
  trained = [p for p in model.parameters() if p.requires_grad]
  optimizer = _OPTIMIZERS[spec.optimizer.name](torch, trained, spec.optimizer.args)
  return model, optimizer


def build_gan(spec: common.GanSpec, device: str = "cpu"):
  """The reports' DCGAN in PyTorch with Keras' initialisation, on `device`: (generator,
  discriminator, their two optimisers). 'same' padding as 2 on each side (Keras pads a stride-2
  5x5 conv of an even size 1 before and 2 after: the same shapes, the same work)."""
  import torch
  from torch import nn

  height, width, channels = spec.input_shape
  small, large = common.GAN_FEATURES
  pad = common.GAN_KERNEL_SIZE // 2
  conv = lambda fan_in, features, stride=1: nn.Conv2d(fan_in, features, common.GAN_KERNEL_SIZE,
                                                      stride=stride, padding=pad)
  seed = nn.Linear(spec.latent, height // 4 * width // 4 * large)
  generator = nn.Sequential(
      seed, nn.LeakyReLU(common.GAN_LEAK), nn.Unflatten(1, (large, height // 4, width // 4)),
      nn.Upsample(scale_factor=2), conv(large, small), nn.LeakyReLU(common.GAN_LEAK),
      nn.Upsample(scale_factor=2), conv(small, channels), nn.Tanh())
  discriminator = nn.Sequential(
      conv(channels, small, 2), nn.LeakyReLU(common.GAN_LEAK), nn.Dropout(common.GAN_DROPOUT),
      conv(small, large, 2), nn.LeakyReLU(common.GAN_LEAK), nn.Dropout(common.GAN_DROPOUT),
      nn.Flatten(), nn.Linear(height // 4 * width // 4 * large, 1))
  for module in [*generator.modules(), *discriminator.modules()]:
    if isinstance(module, nn.Conv2d | nn.Linear):
      nn.init.xavier_uniform_(module.weight)
      nn.init.zeros_(module.bias)
  nn.init.normal_(seed.weight, std=0.02)
  generator, discriminator = generator.to(device), discriminator.to(device)
  return generator, discriminator, *(
      _OPTIMIZERS[spec.optimizer.name](torch, network.parameters(), spec.optimizer.args)
      for network in (generator, discriminator))


def train_gan(spec: common.GanSpec, num_examples: int, epochs: int, compile_model: bool,
              device: str) -> dict[str, Any]:
  """The DCGAN loop a PyTorch user writes (the PyTorch DCGAN example's): D on real + detached
  fake, step; G on fresh noise through D, step (D's gradients from it are zeroed before D's
  next step). Losses are summed on tensors and read once per epoch."""
  import torch
  import torch.nn.functional as F

  images = common.random_data(spec, num_examples)[0]
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()
  x = x.to(device)
  generator, discriminator, g_optimizer, d_optimizer = build_gan(spec, device)
  parameters = sum(p.numel() for net in (generator, discriminator) for p in net.parameters())
  generate, discriminate = ((torch.compile(net) if compile_model else net)
                            for net in (generator, discriminator))
  generator.train()
  discriminator.train()
  batch = spec.batch_size
  steps_per_epoch = num_examples // batch
  labels = torch.cat([torch.ones(batch, 1), torch.zeros(batch, 1)]).to(device)
  timer = common.EpochTimer()
  compile_seconds = None
  for _ in range(epochs):
    timer.start()
    order = torch.randperm(num_examples, device=device)
    sums = torch.zeros(3, device=device)  # d_loss, d_accuracy, g_loss
    for step in range(steps_per_epoch):
      real = x[order[step * batch:(step + 1) * batch]]
      fake = generate(torch.randn(batch, spec.latent, device=device))
      d_optimizer.zero_grad(set_to_none=True)
      logits = discriminate(torch.cat([real, fake.detach()]))
      d_loss = F.binary_cross_entropy_with_logits(logits, labels)
      d_loss.backward()
      d_optimizer.step()
      g_optimizer.zero_grad(set_to_none=True)
      g_loss = F.binary_cross_entropy_with_logits(
          discriminate(generate(torch.randn(batch, spec.latent, device=device))),
          labels[:batch])
      g_loss.backward()
      g_optimizer.step()
      sums += torch.stack([d_loss.detach(), ((logits.detach() > 0) == (labels > 0)).float().mean(),
                           g_loss.detach()])
      if compile_seconds is None:
        if device == "cuda":
          torch.cuda.synchronize()
        compile_seconds = time.perf_counter() - timer.start_time
    d_loss_mean, d_accuracy, g_loss_mean = (sums / steps_per_epoch).tolist()
    timer.stop()
  first, *steady = timer.epoch_seconds
  return common.measurement(
      steady, steps_per_epoch * batch, compile_seconds=compile_seconds, first_epoch_seconds=first,
      parameters=parameters, final_loss=d_loss_mean, final_accuracy=d_accuracy,
      g_loss=g_loss_mean, versions={"torch": torch.__version__}, threads=torch.get_num_threads(),
      devices=torch.cuda.get_device_name() if device == "cuda" else "cpu",
      compiled=compile_model)


def _loss_and_correct(F, spec: common.ModelSpec | common.SequenceSpec):
  """(loss(outputs, targets), correct(outputs, targets) -> count or None) of the spec's task."""
  if isinstance(spec, common.SequenceSpec) and spec.per_step:  # [B, T, V] logits, [B, T] ids
    return (lambda logits, ids: F.cross_entropy(logits.flatten(0, 1), ids.flatten()),
            lambda logits, ids: (logits.argmax(-1) == ids).sum())
  if isinstance(spec, common.SequenceSpec):  # [B, 1] logits, [B] 0/1 labels
    return (lambda logits, labels: F.binary_cross_entropy_with_logits(logits[:, 0], labels),
            lambda logits, labels: ((logits[:, 0] > 0) == (labels > 0.5)).sum())
  if spec.unet:
    return F.mse_loss, None
  return F.cross_entropy, lambda logits, labels: (logits.argmax(1) == labels).sum()


def train(spec: common.ModelSpec | common.GanSpec | common.SequenceSpec, num_examples: int,
          epochs: int, compile_model: bool = False, threads: int = 0,
          flush_denormal: bool = True, device: str = "cpu") -> dict[str, Any]:
  """Trains `spec` for `epochs` epochs of `num_examples` random examples, eager or compiled.

  `threads` = 0 means `os.cpu_count()`; `device` is 'cpu' or 'gpu' (the first CUDA device).
  """
  import torch
  import torch.nn.functional as F

  torch.set_num_threads(threads or os.cpu_count())
  flushing = flush_denormal and torch.set_flush_denormal(True)  # False where unsupported
  torch.manual_seed(0)
  torch_device = {"cpu": "cpu", "gpu": "cuda"}[device]
  if isinstance(spec, common.GanSpec):
    return {**train_gan(spec, num_examples, epochs, compile_model, torch_device),
            "flush_denormal": flushing}
  nchw = lambda images: torch.from_numpy(images).permute(0, 3, 1, 2).float().contiguous()
  sequence = isinstance(spec, common.SequenceSpec)
  clip_norm = spec.optimizer.args.get("global_clipnorm") if sequence else None
  if sequence:
    inputs, targets = common.token_data(spec, num_examples)
    x, y = torch.from_numpy(inputs).long(), torch.from_numpy(targets)
    x, y = x.to(torch_device), (y.long() if spec.per_step else y.float()).to(torch_device)
    model, optimizer = build_sequence(spec, torch_device)
  elif spec.unet:
    inputs, targets = common.denoising_data(spec, num_examples)
    x, y = nchw(inputs).to(torch_device), nchw(targets).to(torch_device)
    model, optimizer = build(spec, torch_device)
  else:
    images, labels = common.random_data(spec, num_examples)
    x = nchw(images).div(255.0).to(torch_device)
    y = torch.from_numpy(labels).to(torch_device)
    model, optimizer = build(spec, torch_device)
  loss_fn, correct_fn = _loss_and_correct(F, spec)
  parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
  step_model = torch.compile(model) if compile_model else model
  model.train()

  batch = spec.batch_size
  steps_per_epoch = num_examples // batch
  timer = common.EpochTimer()
  compile_seconds = None
  for _ in range(epochs):
    timer.start()
    order = torch.randperm(num_examples, device=torch_device)
    loss_sum = torch.zeros((), device=torch_device)
    correct = torch.zeros((), dtype=torch.int64, device=torch_device)
    for step in range(steps_per_epoch):
      index = order[step * batch:(step + 1) * batch]
      inputs, targets = x[index], y[index]
      optimizer.zero_grad(set_to_none=True)
      logits = step_model(inputs)
      loss = loss_fn(logits, targets)
      loss.backward()
      if clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
      optimizer.step()
      loss_sum += loss.detach()
      if correct_fn:
        correct += correct_fn(logits.detach(), targets)
      if compile_seconds is None:
        if torch_device == "cuda":
          torch.cuda.synchronize()
        compile_seconds = time.perf_counter() - timer.start_time
    epoch_loss = loss_sum.item() / steps_per_epoch  # what a user prints after each epoch
    epoch_accuracy = correct.item() / (steps_per_epoch * batch * targets[0].numel()) if (
        correct_fn) else None
    timer.stop()
  first, *steady = timer.epoch_seconds
  return common.measurement(
      steady, steps_per_epoch * batch,
      compile_seconds=compile_seconds,
      first_epoch_seconds=first,
      parameters=parameters,
      final_loss=epoch_loss,
      final_accuracy=epoch_accuracy,
      versions={"torch": torch.__version__},
      threads=torch.get_num_threads(),
      devices=torch.cuda.get_device_name() if torch_device == "cuda" else "cpu",
      flush_denormal=flushing,
      compiled=compile_model,
  )
