"""PredRNN (Wang et al., NeurIPS 2017) and PredRNN-V2 (Wang et al., TPAMI 2022).

Both stack spatiotemporal LSTM (ST-LSTM) cells. Each cell keeps the usual temporal memory C (per
layer, carried from t−1 to t) and a **spatiotemporal memory M** that flows zigzag: up through the
layers within a time step, and from the top layer at t−1 into the bottom layer at t. For layer k at
step t, with X the layer's input (the patch grid for k = 1, H^{k−1}_t above) and ``*`` a convolution:

    i  = σ(W_xi * X + W_hi * H^k_{t−1})          i' = σ(W'_xi * X + W_mi * M^{k−1}_t)
    f  = σ(W_xf * X + W_hf * H^k_{t−1} + 1)      f' = σ(W'_xf * X + W_mf * M^{k−1}_t + 1)
    g  = tanh(W_xg * X + W_hg * H^k_{t−1})       g' = tanh(W'_xg * X + W_mg * M^{k−1}_t)
    C^k_t = f ∘ C^k_{t−1} + i ∘ g   (ΔC = i ∘ g)  M^k_t = f' ∘ M^{k−1}_t + i' ∘ g'   (ΔM = i' ∘ g')
    o  = σ(W_xo * X + W_ho * H^k_{t−1} + W_o * [C^k_t ; M^k_t])
    H^k_t = o ∘ tanh(W_1×1 * [C^k_t ; M^k_t])

with M^0_t = M^L_{t−1} (zigzag) and M^0_0 = 0. As in OpenSTL (and the authors' code), the
convolutions have no bias, the forget gates get a constant +1 (``FORGET_BIAS``, not a parameter)
and W_o is one ``filter_size`` conv over [C ; M]. Frames enter through a patch reshape
(PixelUnshuffle); a 1×1 conv without bias reads the next frame out of the top H.

PredRNN-V2 adds, for training only (its forward at inference is PredRNN's):

* the **decoupling loss**: a shared 1×1 ``adapter`` (no bias) projects ΔC and ΔM of every layer and
  step; the loss is the mean over steps, layers, sequences and channels of
  ``|cos(adapter(ΔC)_c, adapter(ΔM)_c)|``, the cosine taken over the h×w positions of channel c
  (:func:`decoupling_loss`). The training loss is MSE + β · that (β = ``decouple_beta``, 0.1);
* **reverse scheduled sampling**: the input part too is sampled — each input frame after the first is
  the ground truth with probability r_η, else the model's own prediction; r_η rises from 0.5 to 1 while
  the usual teacher-forcing probability η of the predicted part falls from 0.5 to 0
  (:func:`reverse_sampling_probabilities`).

Parameter layout = OpenSTL's ``PredRNN_Model`` / ``PredRNNv2_Model`` with ``layer_norm=0``: per cell
``conv_x`` (7·hidden out: i, f, g, i', f', g', o), ``conv_h`` (4·hidden: i, f, g, o), ``conv_m``
(3·hidden: i', f', g'), ``conv_o`` (2·hidden → hidden), ``conv_last`` (1×1, 2·hidden → hidden), then the
model's ``readout`` (OpenSTL's ``conv_last``) and V2's ``adapter``. OpenSTL's Moving MNIST configs
(4 × 128 hidden, 5×5 filters, patch 4) give exactly 23,838,720 (PredRNN) and 23,855,104 (PredRNN-V2)
parameters, every one of them used (V2's adapter only by the decoupling loss). This module does no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.errors import ConfigError, InputError
from stzoo.models.base import Architecture, Recipe, cfg_field, register
from stzoo.models.recurrent import (
    RecurrentConfig,
    RecurrentNet,
    recurrent_declaration,
    recurrent_tiny_config,
    rollout_activation_floats,
)

__all__ = [
    "PredRNN",
    "PredRNNv2",
    "PredRNNConfig",
    "PredRNNv2Config",
    "STLSTMCellWithDeltas",
    "decoupling_loss",
    "reverse_sampling_probabilities",
    "v2_sampling_masks",
    "predrnn_v2_training_forward",
    "FORGET_BIAS",
    "PREDRNN_RECIPE",
    "PREDRNN_V2_RECIPE",
    "ARCHITECTURE",
    "ARCHITECTURE_V2",
]

#: added to both forget gates' pre-activations (OpenSTL's ``_forget_bias``; the authors' code uses 1.0 too)
FORGET_BIAS = 1.0


@dataclass
class PredRNNConfig(RecurrentConfig):
    """PredRNN's settings. Defaults: OpenSTL's ``configs/mmnist/PredRNN.py`` (23,838,720 parameters)."""

    num_hidden: int = cfg_field(128, lo=1, hi=2048)  # hidden channels of every ST-LSTM layer (and of M)


@dataclass
class PredRNNv2Config(PredRNNConfig):
    """PredRNN-V2's settings: PredRNN's plus its training regime. Defaults: OpenSTL's
    ``configs/mmnist/PredRNNv2.py`` (23,855,104 parameters). The schedule points are fractions of the
    training run; OpenSTL gives them in iterations of its 125,000 (200 epochs × 625 batches of 16)."""

    decouple_beta: float = cfg_field(0.1, lo=0.0, hi=1000.0)  # β: weight of the decoupling loss
    reverse_scheduled_sampling: bool = True  # sample the input part too (OpenSTL: 1)
    sampling_start: float = cfg_field(0.2, lo=0.0, hi=1.0)  # r_η, η start to move here (OpenSTL 25,000 its)
    sampling_stop: float = cfg_field(0.4, lo=0.0, hi=1.0)  # ... and end here: r_η = 1, η = 0 (50,000 its)
    sampling_exp_alpha: float = cfg_field(0.04, lo=1e-9, hi=1.0)  # time constant of r_η's rise (5,000 its)

    def validate(self) -> None:
        super().validate()
        if self.sampling_start > self.sampling_stop:
            raise ConfigError(
                f"sampling_start ({self.sampling_start}) must not come after sampling_stop ({self.sampling_stop})"
            )


class STLSTMCellWithDeltas(nn.Module):
    """One ST-LSTM layer (OpenSTL's ``SpatioTemporalLSTMCell``; equations in the module docstring) that also
    returns the increments ΔC, ΔM PredRNN-V2's decoupling loss reads (:class:`stzoo.models.mim.STLSTMCell`
    is the same cell without them). Shapes for a B×c_in×h×w input X: H, C, M and ΔC, ΔM are B×c_hid×h×w."""

    def __init__(self, c_in: int, c_hid: int, filter_size: int = 5):
        super().__init__()
        pad = filter_size // 2
        self.c_hid = c_hid
        self.conv_x = nn.Conv2d(c_in, 7 * c_hid, filter_size, padding=pad, bias=False)  # i f g i' f' g' o
        self.conv_h = nn.Conv2d(c_hid, 4 * c_hid, filter_size, padding=pad, bias=False)  # i f g o
        self.conv_m = nn.Conv2d(c_hid, 3 * c_hid, filter_size, padding=pad, bias=False)  # i' f' g'
        self.conv_o = nn.Conv2d(2 * c_hid, c_hid, filter_size, padding=pad, bias=False)  # [C;M] → o
        self.conv_last = nn.Conv2d(2 * c_hid, c_hid, 1, bias=False)  # [C;M] → H

    def forward(self, x: Tensor, h: Tensor, c: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(X, H_{t−1}, C_{t−1}, M from below) → (H_t, C_t, M_t, ΔC, ΔM)."""
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = torch.split(self.conv_x(x), self.c_hid, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h), self.c_hid, dim=1)
        i_m, f_m, g_m = torch.split(self.conv_m(m), self.c_hid, dim=1)
        delta_c = torch.sigmoid(i_x + i_h) * torch.tanh(g_x + g_h)
        c = torch.sigmoid(f_x + f_h + FORGET_BIAS) * c + delta_c
        delta_m = torch.sigmoid(i_xm + i_m) * torch.tanh(g_xm + g_m)
        m = torch.sigmoid(f_xm + f_m + FORGET_BIAS) * m + delta_m
        cm = torch.cat([c, m], dim=1)  # B×2c_hid×h×w
        h = torch.sigmoid(o_x + o_h + self.conv_o(cm)) * torch.tanh(self.conv_last(cm))
        return h, c, m, delta_c, delta_m


def decoupling_loss(adapter: nn.Module, deltas: list[tuple[Tensor, Tensor]]) -> Tensor:
    """PredRNN-V2's decoupling term: for each (ΔC, ΔM) pair (one per layer and step, B×c×h×w), the
    mean over sequences and channels of |cosine similarity over the h×w positions| between
    ``adapter(ΔC)`` and ``adapter(ΔM)``; then the mean over the pairs."""
    terms = []
    for dc, dm in deltas:
        a = F.normalize(adapter(dc).flatten(2), dim=2)  # B×c×(h·w)
        b = F.normalize(adapter(dm).flatten(2), dim=2)
        terms.append(torch.cosine_similarity(a, b, dim=2).abs().mean())
    return torch.stack(terms).mean()


class PredRNN(RecurrentNet):
    """A stack of ST-LSTM cells with the zigzag memory and a 1×1 readout. Any T in, any number out."""

    arch = "predrnn"
    config_class: type[PredRNNConfig] = PredRNNConfig

    def make_cell(self, c_in: int, c_hid: int, filter_size: int) -> nn.Module:
        return STLSTMCellWithDeltas(c_in, c_hid, filter_size)

    def init_states(
        self, batch: int, h: int, w: int, like: Tensor
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], Tensor]:
        """Zero states for an ``h``×``w`` grid: (H per layer, C per layer, the zigzag memory M)."""
        z = like.new_zeros(batch, self.num_hidden, h, w)
        return (z,) * self.num_layers, (z,) * self.num_layers, z

    def _step(
        self, frame: Tensor, states: tuple[Any, Any, Tensor]
    ) -> tuple[Tensor, tuple[Any, Any, Tensor], list[tuple[Tensor, Tensor]]]:
        """:meth:`step`, also returning each layer's (ΔC, ΔM)."""
        hs, cs, m = states
        z = self._encode(frame)  # B×C·p²×h×w
        new_h, new_c, deltas = [], [], []
        for cell, h, c in zip(self.cells, hs, cs):
            z, c, m, dc, dm = cell(z, h, c, m)  # M goes up the stack; the top one starts the next step
            new_h.append(z)
            new_c.append(c)
            deltas.append((dc, dm))
        return self.unpatchify(self.readout(z)), (tuple(new_h), tuple(new_c), m), deltas

    def step(self, frame: Tensor, states: tuple[Any, Any, Tensor]) -> tuple[Tensor, tuple[Any, Any, Tensor]]:
        """One time step: read ``frame`` (B×C×H×W), return the predicted next frame and the states."""
        pred, states, _ = self._step(frame, states)
        return pred, states

    @staticmethod
    def _mask(mask: Tensor | None, x: Tensor, need: int, what: str) -> Tensor | None:
        if mask is None:
            return None
        mask = mask.to(x.dtype)
        if mask.dim() == 2:
            mask = mask[:, :, None, None, None]
        if mask.dim() != 5 or mask.shape[1] < need:
            raise InputError(f"{what} must be B×N (or B×N×1×1×1) with N >= {need}, got {tuple(mask.shape)}")
        return mask

    def _rollout(
        self,
        x: Tensor,
        n_out: int | None,
        target: Tensor | None,
        teacher_mask: Tensor | None,
        input_mask: Tensor | None,
        return_context: bool,
        want_deltas: bool,
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        self.check_input(x)
        n_out = self.frames_out if n_out is None else int(n_out)
        if n_out < 1:
            raise InputError(f"n_out must be >= 1, got {n_out}")
        b, t, c, hh, ww = x.shape
        if teacher_mask is not None and (target is None or target.shape[1] < n_out - 1):
            raise InputError("teacher_mask needs `target` with at least n_out-1 frames")
        teacher_mask = self._mask(teacher_mask, x, n_out - 1, "teacher_mask")
        input_mask = self._mask(input_mask, x, t - 1, "input_mask")
        states = self.init_states(b, hh // self.patch_size, ww // self.patch_size, x)
        outputs: list[Tensor] = []
        deltas: list[tuple[Tensor, Tensor]] = []
        pred = x[:, 0]
        for i in range(t - 1 + n_out):
            if i == 0:
                frame = x[:, 0]
            elif i < t:
                frame = (
                    x[:, i]
                    if input_mask is None
                    else (input_mask[:, i - 1] * x[:, i] + (1 - input_mask[:, i - 1]) * pred)
                )
            elif teacher_mask is not None:
                k = i - t  # index of the future frame that `pred` estimates
                frame = teacher_mask[:, k] * target[:, k] + (1 - teacher_mask[:, k]) * pred
            else:
                frame = pred
            pred, states, d = self._step(frame, states)
            if want_deltas:
                deltas.extend(d)
            if i >= t - 1 or return_context:
                outputs.append(pred)
        return torch.stack(outputs, dim=1), deltas

    def forward(
        self,
        x: Tensor,
        n_out: int | None = None,
        *,
        target: Tensor | None = None,
        teacher_mask: Tensor | None = None,
        input_mask: Tensor | None = None,
        return_context: bool = False,
    ) -> Tensor:
        """Predict ``n_out`` frames after the frames in ``x`` (B×T×C×H×W); as
        :meth:`RecurrentNet.forward`, plus ``input_mask`` (reverse scheduled sampling): B×(T−1)
        weights in [0, 1]; input frame i ≥ 1 becomes ``m·x[:, i] + (1−m)·prediction of frame i``.
        ``None`` = the observed frames (inference)."""
        return self._rollout(x, n_out, target, teacher_mask, input_mask, return_context, False)[0]


class PredRNNv2(PredRNN):
    """PredRNN with the decoupling adapter. At inference it computes exactly PredRNN's function."""

    arch = "predrnn_v2"
    config_class = PredRNNv2Config

    def __init__(self, config: PredRNNv2Config | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.adapter = nn.Conv2d(self.num_hidden, self.num_hidden, 1, bias=False)  # shared by all layers

    def forward(
        self,
        x: Tensor,
        n_out: int | None = None,
        *,
        target: Tensor | None = None,
        teacher_mask: Tensor | None = None,
        input_mask: Tensor | None = None,
        return_context: bool = False,
        return_decouple: bool = False,
    ) -> Any:
        """As :meth:`PredRNN.forward`; with ``return_decouple=True`` returns ``(frames, decoupling loss)``
        (:func:`decoupling_loss` over every layer and step of this rollout)."""
        frames, deltas = self._rollout(x, n_out, target, teacher_mask, input_mask, return_context, return_decouple)
        if return_decouple:
            return frames, decoupling_loss(self.adapter, deltas)
        return frames


# --------------------------------------------------------------------------------------------
# Training regimes
# --------------------------------------------------------------------------------------------
def reverse_sampling_probabilities(progress: float, cfg: PredRNNv2Config) -> tuple[float, float]:
    """``(r_η, η)`` at ``progress`` (fraction of training done), OpenSTL's ``reserve_schedule_sampling_exp``
    with its iteration counts as fractions: before ``sampling_start`` both are 0.5; until
    ``sampling_stop`` r_η = 1 − 0.5·exp(−(progress − start)/alpha) and η falls linearly to 0; then 1, 0."""
    s1, s2, alpha = cfg.sampling_start, cfg.sampling_stop, cfg.sampling_exp_alpha
    if progress < s1:
        return 0.5, 0.5
    if progress < s2:
        return 1.0 - 0.5 * math.exp(-(progress - s1) / alpha), 0.5 - 0.5 * (progress - s1) / (s2 - s1)
    return 1.0, 0.0


def v2_sampling_masks(
    cfg: PredRNNv2Config, recipe: Recipe, batch: int, progress: float, device: torch.device | str = "cpu"
) -> tuple[Tensor | None, Tensor | None]:
    """``(input_mask B×(T_in−1), teacher_mask B×(T_out−1))`` of 0/1 draws for one training batch.

    With ``reverse_scheduled_sampling``: ground truth with probability r_η in the input part and η in
    the predicted part (:func:`reverse_sampling_probabilities`). Without: the input part is observed and
    teacher forcing decays linearly from 1 to 0 over ``recipe.scheduled_sampling`` of the run
    (OpenSTL's ``schedule_sampling``)."""

    def draw(p: float, n: int) -> Tensor:
        return torch.bernoulli(torch.full((batch, n), float(p), device=device))

    if cfg.reverse_scheduled_sampling:
        r_eta, eta = reverse_sampling_probabilities(progress, cfg)
        return draw(r_eta, recipe.frames_in - 1), draw(eta, recipe.frames_out - 1)
    if recipe.scheduled_sampling > 0:
        return None, draw(max(0.0, 1.0 - progress / recipe.scheduled_sampling), recipe.frames_out - 1)
    return None, None


def predrnn_v2_training_forward(
    model: nn.Module, recipe: Recipe, seq: Tensor, progress: float
) -> tuple[Tensor, Tensor, Tensor]:
    """PredRNN-V2's training forward on a B×(T_in+T_out)×C×H×W batch, with the masks of
    :func:`v2_sampling_masks`: every one-step prediction (frames 1 … T_in+T_out−1, as OpenSTL), its
    target, and β · the decoupling loss. The training code adds the recipe's loss (MSE) of the first two.
    ``model`` may be wrapped (DistributedDataParallel): it is called, so the wrapper's hooks run."""
    cfg = getattr(model, "module", model).config
    t_in, t_out = recipe.frames_in, recipe.frames_out
    x, y = seq[:, :t_in], seq[:, t_in : t_in + t_out]
    input_mask, teacher_mask = v2_sampling_masks(cfg, recipe, seq.shape[0], progress, seq.device)
    pred, decouple = model(
        x, t_out, target=y, teacher_mask=teacher_mask, input_mask=input_mask, return_context=True, return_decouple=True
    )
    return pred, seq[:, 1 : t_in + t_out], cfg.decouple_beta * decouple.float()


#: OpenSTL's PredRNN recipe (configs/mmnist/PredRNN.py): Adam(W, no decay) at 5e-4, OneCycle, batch 16, MSE
#: over every one-step prediction, no gradient clipping; scheduled sampling: η falls linearly from 1 by
#: 2e-5 per iteration to 0 at iteration 50,000 of 125,000 = 0.4 of the run (stzoo's generic schedule).
PREDRNN_RECIPE = Recipe(lr=5e-4, batch_size=16, loss="mse", scheduled_sampling=0.4, grad_clip=0.0)
#: PredRNN-V2's (configs/mmnist/PredRNNv2.py): the same, with its own sampling (see PredRNNv2Config)
PREDRNN_V2_RECIPE = Recipe(lr=5e-4, batch_size=16, loss="mse", scheduled_sampling=0.4, grad_clip=0.0)

ARCHITECTURE = register(
    Architecture(
        name="predrnn",
        model=PredRNN,
        config=PredRNNConfig,
        **{**recurrent_declaration("cells.0.conv_x.weight"), "recipe": PREDRNN_RECIPE},
        activation_floats=rollout_activation_floats,
        tiny_config=recurrent_tiny_config(),
        description="PredRNN (Wang et al., NeurIPS 2017): ST-LSTM cells with a zigzag spatiotemporal memory",
    )
)

ARCHITECTURE_V2 = register(
    Architecture(
        name="predrnn_v2",
        model=PredRNNv2,
        config=PredRNNv2Config,
        **{**recurrent_declaration("cells.0.conv_x.weight"), "recipe": PREDRNN_V2_RECIPE},
        activation_floats=rollout_activation_floats,
        tiny_config=recurrent_tiny_config(decouple_beta=0.05),
        description="PredRNN-V2 (Wang et al., TPAMI 2022): PredRNN with memory decoupling and reverse "
        "scheduled sampling",
        training_forward=predrnn_v2_training_forward,
    )
)
