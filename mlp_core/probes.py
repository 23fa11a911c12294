"""The probes inside the network (makemore part 3): activations, gradients and update sizes on one fixed batch.

Every number here comes from one forward and backward pass on a seeded batch of training examples, with the
model exactly as it trains (BatchNorm on batch statistics) but without touching it: no optimizer step, no
dropout mask drawn, BatchNorm's running statistics restored. So a run with diagnostics on trains to exactly
the weights of a run with them off. Results are frozen, picklable dataclasses of numpy arrays and floats:
they cross a process boundary in a job snapshot.

The Trainer records them while it trains (`DiagnosticsRecorder`); `diagnostics` re-exports all of this and adds
what runs a Trainer itself (overfit one batch), so this module must not import the trainer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import NamesDataset
from .model import MLP

PROBE_SIZE = 256  # examples in the probe batch: enough for smooth histograms, a few ms per probe
PROBE_SEED = 0  # the probe batch does not depend on the run's seed: runs with other seeds compare
SATURATED = 0.97  # |tanh| above this is saturated: its local gradient 1 - h^2 is below 0.06
MAP_NEURONS = 256  # the saturation map shows at most this many neurons ...
MAP_EXAMPLES = 64  # ... on at most this many probe examples (a lecture-size layer: 200 x 64)
PREACT_RANGE = 10.0  # pre-activation histograms span [-10, 10] at every step, so they compare over time
PREACT_BINS = 80
ACT_BINS = 50  # tanh outputs: [-1, 1]
GRAD_BINS = 50  # gradients: +-4 standard deviations of each tensor's own gradient
MAX_POINTS = 128  # trainer.diagnostics keeps at most this many points, thinned evenly, init and latest kept


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Histogram:
    """counts[i] values fell in [edges[i], edges[i + 1]); values outside the range land in the end bins."""

    low: float
    high: float
    counts: np.ndarray  # (bins,) int32: the edges are implied, which keeps a snapshot of many points small

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, len(self.counts) + 1)


@dataclass(frozen=True, eq=False)
class LayerStats:
    """One hidden layer on the probe batch: its pre-activations (BatchNorm applied, if any) and tanh outputs."""

    name: str
    neurons: int
    preact: Histogram
    act: Histogram
    preact_std: float
    act_std: float
    saturated_fraction: float  # of all (example, neuron) pairs with |tanh| > SATURATED
    dead_neurons: int  # saturated on every probe example: no gradient flows through them on this batch
    saturation_map: np.ndarray | None  # (neurons, examples) bool, capped; None on thinned-out older points


@dataclass(frozen=True, eq=False)
class ParamStats:
    """One parameter tensor: its gradient on the probe batch and how big a step at the current lr would be."""

    name: str
    shape: tuple[int, ...]
    grad: Histogram
    data_std: float
    grad_std: float
    grad_data_ratio: float  # std(grad) / std(data); NaN when the data has no spread (a zero-initialised bias)
    update_ratio: float  # log10(std(lr * grad) / std(data)): the lecture aims for about -3


@dataclass(frozen=True, eq=False)
class DiagnosticsPoint:
    """Everything measured at one step."""

    step: int
    lr: float
    loss: float  # on the probe batch
    uniform_loss: float  # ln(vocab size): the loss of guessing every character equally likely
    layers: tuple[LayerStats, ...]
    params: tuple[ParamStats, ...]

    def without_maps(self) -> DiagnosticsPoint:
        """The same point without its saturation maps (older points keep only what the time series need)."""
        layers = tuple(dataclasses.replace(layer, saturation_map=None) for layer in self.layers)
        return dataclasses.replace(self, layers=layers)


# ---------------------------------------------------------------------------- probing
def probe_batch(
    dataset: NamesDataset, size: int = PROBE_SIZE, seed: int = PROBE_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded batch of (contexts, targets) from the training split (all of it when it is smaller)."""
    x, y = dataset.splits["train"]
    if len(x) == 0:
        raise ValueError("the training split is empty: no probe batch to look at")
    n = min(size, len(x))
    ix = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[ix], y[ix]


def probe(model: MLP, x: torch.Tensor, y: torch.Tensor, step: int = 0, lr: float = 0.0) -> DiagnosticsPoint:
    """Measure the model on the batch (x, y) without changing it (weights, BatchNorm statistics, RNG streams)."""
    device = model.W1.device
    x, y = x.to(device), y.to(device)
    buffers = {name: buf.clone() for name, buf in model.named_buffers()}
    was_training = model.training
    names, params = zip(*model.named_parameters(), strict=True)
    record: list[tuple[torch.Tensor, torch.Tensor]] = []
    model.train()  # BatchNorm normalises with the batch's own statistics, as in a training step
    try:
        with torch.enable_grad():
            h = model.hidden_states(x, record)
            # The output layer without dropout: we look at the network itself, and draw no mask from its stream.
            loss = F.cross_entropy(torch.addmm(model.b2, h, model.W2), y)
            grads = torch.autograd.grad(loss, params)
    finally:
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(buffers[name])
        model.train(was_training)
    with torch.no_grad():
        layers = tuple(_layer_stats(f"hidden {k}", pre, act) for k, (pre, act) in enumerate(record, start=1))
        stats = tuple(_param_stats(n, p, g, lr) for n, p, g in zip(names, params, grads, strict=True))
    return DiagnosticsPoint(step, float(lr), float(loss.detach()), math.log(model.vocab_size), layers, stats)


def _histogram(values: torch.Tensor, low: float, high: float, bins: int) -> Histogram:
    v = values.detach().float().flatten().clamp(low, high)  # out-of-range values count in the end bins
    counts = torch.histc(v, bins=bins, min=low, max=high)
    return Histogram(float(low), float(high), counts.cpu().numpy().astype(np.int32))


def _layer_stats(name: str, pre: torch.Tensor, act: torch.Tensor) -> LayerStats:
    saturated = act.abs() > SATURATED  # (examples, neurons)
    return LayerStats(
        name=name,
        neurons=act.shape[1],
        preact=_histogram(pre, -PREACT_RANGE, PREACT_RANGE, PREACT_BINS),
        act=_histogram(act, -1.0, 1.0, ACT_BINS),
        preact_std=float(pre.std()) if pre.numel() > 1 else 0.0,
        act_std=float(act.std()) if act.numel() > 1 else 0.0,
        saturated_fraction=float(saturated.float().mean()),
        dead_neurons=int(saturated.all(0).sum()),
        saturation_map=saturated[:MAP_EXAMPLES, :MAP_NEURONS].T.cpu().numpy().copy(),
    )


def _std(t: torch.Tensor) -> float:
    return float(t.float().std()) if t.numel() > 1 else math.nan  # one number has no spread


def _param_stats(name: str, param: torch.Tensor, grad: torch.Tensor, lr: float) -> ParamStats:
    data_std, grad_std = _std(param), _std(grad)
    ratio = grad_std / data_std if data_std > 0 else math.nan
    update = math.log10(lr * ratio) if lr > 0 and ratio > 0 else math.nan  # NaN > 0 is False
    span = 4 * grad_std if grad_std > 0 else 1e-8
    return ParamStats(
        name=name,
        shape=tuple(param.shape),
        grad=_histogram(grad, -span, span, GRAD_BINS),
        data_std=data_std,
        grad_std=grad_std,
        grad_data_ratio=ratio,
        update_ratio=update,
    )


class DiagnosticsRecorder:
    """Probes a training model every `every` steps into a bounded list (the Trainer's `diagnostics`)."""

    def __init__(self, dataset: NamesDataset, every: int, max_points: int = MAX_POINTS) -> None:
        self.every = every
        self.points: list[DiagnosticsPoint] = []
        self._x, self._y = probe_batch(dataset)
        self._max_points = max_points
        self._next_step = 0

    def maybe_record(self, model: MLP, step: int, lr: float) -> None:
        """Probe now if diagnostics are on and this step is due (step 0, the init check, always is)."""
        if self.every <= 0 or step < self._next_step:
            return
        if self.points and self.points[-1].step == step:
            return
        if self.points and len(self.points) > 1:
            # Only the init point and the latest keep their saturation maps: snapshots stay small.
            self.points[-1] = self.points[-1].without_maps()
        self.points.append(probe(model, self._x, self._y, step, lr))
        self._next_step = (step // self.every + 1) * self.every
        if len(self.points) > self._max_points:
            # Thin out evenly, in place (readers hold this list), keeping the first and the latest.
            self.points[:] = [*self.points[:-1:2], self.points[-1]]
            self.every *= 2
