"""MAU, the Motion-Aware Unit (Chang et al., NeurIPS 2021): attention over the last τ steps' motion.

A frame is encoded at 1/``sr_size`` of its size by strided convolutions (OpenSTL's Moving MNIST config
does not cut frames into patches), runs up a stack of MAU cells, and is decoded back by transposed
convolutions and a 1×1 readout. Each cell keeps a **temporal state** T (carried from t−1 to t in the
same layer) and passes a **spatial state** S up the stack (S^0_t = the encoded frame). It also keeps
the last τ temporal states T_{t−τ..t−1} and the last τ spatial inputs S_{t−τ..t−1} it read.

MAU cell, layer l at step t (``*`` convolution with ``filter_size``, LN a LayerNorm over the whole
C×h×w map with per-position affine weights, σ sigmoid, d = hidden · h · w)::

    attention module — the motion trend from the last τ steps:
      s' = LN(W_s' * S_t)          t' = LN(W_t' * T_{t−1})
      α_j = softmax_j( ⟨S_{t−j}, s'⟩ / √d ),  j = 1..τ       (⟨·,·⟩ the sum over C×h×w)
      T_trend = Σ_j α_j T_{t−j}
      U = σ(t');  T_fusion = U ∘ T_{t−1} + (1 − U) ∘ T_trend
    fusion module — temporal and spatial states exchange information:
      [t_g, t_t, t_s] = LN(W_t * T_fusion)       [s_g, s_t, s_s] = LN(W_s * S_t)
      T_t = σ(t_g) ∘ t_t + (1 − σ(t_g)) ∘ s_t
      S_out = σ(s_g) ∘ s_s + (1 − σ(s_g)) ∘ t_s   (+ S_t with cell_mode='residual')

with T_{t−1} = T_{t−j} = S_{t−j} = 0 before the first step. S_out is the next layer's S_t; the top
layer's goes to the decoder. Encoder: 1×1 conv then ``log2(sr_size)`` stride-2 3×3 convs, each followed
by LeakyReLU(0.2); decoder: as many stride-2 3×3 transposed convs, LeakyReLU(0.2) after all but the
last (with model_mode='recall', the encoder feature of the same size is added after each); readout:
a 1×1 conv. No sigmoid on the output.

Shapes (B batch, N = num_hidden, h×w = (H/sr_size)×(W/sr_size))::

    frame B×C×H×W → encoder → B×N×h×w → cells 1..L → B×N×h×w → decoder → B×N×H×W → readout → B×C×H×W
    per layer: T B×N×h×w; the τ last T and the τ last S inputs: τ × B×N×h×w each

Because the LayerNorms have one weight per channel and position, a MAU runs only at the frame size it
was built for (``height`` × ``width`` of its config); :meth:`MAU.check_input` says so.

The layout follows OpenSTL's ``MAU_Model`` (``openstl/models/mau_model.py``,
``openstl/modules/mau_modules.py``; Apache-2.0). Differences:

* **parameters.** OpenSTL's ``MAU_Model`` builds a ``merge`` conv (2N → N, 1×1) and a ``conv_last_sr``
  conv (2·C → C, 1×1) that its forward never reads; stzoo leaves both out. With OpenSTL's Moving MNIST
  config (``configs/mmnist/MAU.py``: 4 × 64 hidden, 5×5 filters, patch 1, sr_size 4, τ = 5, 64×64
  frames) OpenSTL has 4,483,588 parameters, of which 8,256 (``merge``) + 3 (``conv_last_sr``) = 8,259
  are never used; stzoo's model has the other 4,475,329.
* **one hidden size.** OpenSTL takes a list of hidden sizes but only runs with equal ones (the cells'
  input width is the previous layer's and the state buffers are sized by it); stzoo has one ``num_hidden``.
* **no patch reshape.** OpenSTL's config has a ``patch_size`` (1 in every published MAU config) that
  its MAU forward does not apply to the frames, so only patch_size 1 runs there; stzoo has no patch size.
* **scheduled sampling** (training only): see :data:`MAU_RECIPE`.

This module does no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.errors import ConfigError, InputError
from stzoo.models.base import (
    Architecture,
    ChannelParam,
    ModelConfig,
    Recipe,
    cfg_field,
    check_frames,
    get_architecture,
    register,
)
from stzoo.models.recurrent import RecurrentNet, rollout_activation_floats

__all__ = ["MAU", "MAUConfig", "MAUCell", "MAU_RECIPE", "ARCHITECTURE"]


@dataclass
class MAUConfig(ModelConfig):
    """MAU's settings. Defaults: OpenSTL's ``configs/mmnist/MAU.py`` (4,475,329 parameters)."""

    frames_in: int = cfg_field(10, lo=1, hi=1000)  # frames read by default (any T runs)
    frames_out: int = cfg_field(10, lo=1, hi=1000)  # frames predicted by default (any horizon runs)
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame
    height: int = cfg_field(64, lo=1, hi=8192)  # the frame height it runs at (LayerNorm weights per position)
    width: int = cfg_field(64, lo=1, hi=8192)  # the frame width it runs at
    num_layers: int = cfg_field(4, lo=1, hi=32)  # stacked MAU cells
    num_hidden: int = cfg_field(64, lo=1, hi=2048)  # channels of T and S in every cell (and of the encoder)
    filter_size: int = cfg_field(5, lo=1, hi=15)  # kernel of the cells' convolutions (odd)
    sr_size: int = cfg_field(4, choices=(1, 2, 4, 8, 16, 32))  # the encoder downsamples frames by this
    tau: int = cfg_field(5, lo=1, hi=64)  # τ: past steps the attention looks back on
    cell_mode: str = cfg_field("normal", choices=("normal", "residual"))  # 'residual' adds S_t to S's output
    model_mode: str = cfg_field("normal", choices=("normal", "recall"))  # 'recall': encoder skips into the decoder

    def validate(self) -> None:
        super().validate()
        if self.filter_size % 2 == 0:
            raise ConfigError(f"filter_size must be odd so the states keep their size, got {self.filter_size}")
        for key in ("height", "width"):
            if getattr(self, key) % self.sr_size:
                raise ConfigError(
                    f"MAU's {key} must be a multiple of sr_size={self.sr_size} (the encoder "
                    f"downsamples by it), got {getattr(self, key)}"
                )


class MAUCell(nn.Module):
    """One MAU cell (equations in the module docstring): (T_{t−1}, S_t, last τ T, last τ S) → (T_t, S_out)."""

    def __init__(self, c_hid: int, filter_size: int, grid: tuple[int, int], residual: bool):
        super().__init__()
        n, k = c_hid, filter_size
        self.c_hid, self.residual = n, residual
        self.scale = 1.0 / math.sqrt(n * grid[0] * grid[1])  # 1/√d of the attention scores
        self.conv_t = nn.Conv2d(n, 3 * n, k, padding=k // 2)  # T_fusion → t_g, t_t, t_s
        self.norm_t = nn.LayerNorm([3 * n, *grid])
        self.conv_t_next = nn.Conv2d(n, n, k, padding=k // 2)  # T_{t−1} → t' (the fusion gate)
        self.norm_t_next = nn.LayerNorm([n, *grid])
        self.conv_s = nn.Conv2d(n, 3 * n, k, padding=k // 2)  # S_t → s_g, s_t, s_s
        self.norm_s = nn.LayerNorm([3 * n, *grid])
        self.conv_s_next = nn.Conv2d(n, n, k, padding=k // 2)  # S_t → s' (the attention query)
        self.norm_s_next = nn.LayerNorm([n, *grid])

    def forward(self, t: Tensor, s: Tensor, t_att: Tensor, s_att: Tensor) -> tuple[Tensor, Tensor]:
        """t, s: B×N×h×w; t_att, s_att: τ×B×N×h×w (oldest first). Returns (T_t, S_out), both B×N×h×w."""
        n = self.c_hid
        s_next = self.norm_s_next(self.conv_s_next(s))
        t_next = self.norm_t_next(self.conv_t_next(t))
        scores = (s_att * s_next).sum(dim=(2, 3, 4)) * self.scale  # τ×B
        alpha = torch.softmax(scores, dim=0)[:, :, None, None, None]  # τ×B×1×1×1
        trend = (t_att * alpha).sum(dim=0)  # B×N×h×w
        u = torch.sigmoid(t_next)
        fusion = t * u + (1 - u) * trend
        t_g, t_t, t_s = torch.split(self.norm_t(self.conv_t(fusion)), n, dim=1)
        s_g, s_t, s_s = torch.split(self.norm_s(self.conv_s(s)), n, dim=1)
        t_gate, s_gate = torch.sigmoid(t_g), torch.sigmoid(s_g)
        t_new = t_gate * t_t + (1 - t_gate) * s_t
        s_new = s_gate * s_s + (1 - s_gate) * t_s
        return t_new, (s_new + s if self.residual else s_new)


class MAU(RecurrentNet):
    """Encoder, a stack of MAU cells, decoder. Any T in, any number of frames out.

    The recurrent state, as :meth:`init_states` returns and :meth:`step` carries it, is
    ``(ts, t_hist, s_hist)``: per layer, T; the last τ T (oldest first); the last τ S inputs.
    """

    arch = "mau"
    config_class = MAUConfig

    def __init__(self, config: MAUConfig | None = None, **overrides: Any):
        nn.Module.__init__(self)  # not RecurrentNet's: MAU has no patch reshape, its own encoder/readout
        cfg = self.config = MAUConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames_in, self.frames_out = cfg.frames_in, cfg.frames_out
        self.channels, self.height, self.width = cfg.channels, cfg.height, cfg.width
        self.num_layers, self.num_hidden, self.tau = cfg.num_layers, cfg.num_hidden, cfg.tau
        self.patch_size = 1  # frames are not cut into patches (the streaming Forecaster reads this)
        self.sr_size, self.recall = cfg.sr_size, cfg.model_mode == "recall"
        self.grid = (cfg.height // cfg.sr_size, cfg.width // cfg.sr_size)
        n, n_down = cfg.num_hidden, int(math.log2(cfg.sr_size))
        # encoder: 1×1 conv, then n_down stride-2 3×3 convs (each + LeakyReLU(0.2)): B×C×H×W → B×N×h×w
        self.encoder = nn.ModuleList(
            [nn.Conv2d(cfg.channels, n, 1)] + [nn.Conv2d(n, n, 3, stride=2, padding=1) for _ in range(n_down)]
        )
        self.cells = nn.ModuleList(
            MAUCell(n, cfg.filter_size, self.grid, cfg.cell_mode == "residual") for _ in range(cfg.num_layers)
        )
        # decoder: n_down stride-2 3×3 transposed convs (LeakyReLU(0.2) after all but the last): → B×N×H×W
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(n, n, 3, stride=2, padding=1, output_padding=1) for _ in range(n_down)
        )
        self.readout = nn.Conv2d(n, cfg.channels, 1)  # B×N×H×W → B×C×H×W

    def check_input(self, x: Tensor) -> None:
        """The recurrent nets' rules, plus: the frames must have the size this MAU was built for."""
        problems = check_frames(get_architecture(self), self.config, tuple(x.shape))
        if x.dim() == 5 and tuple(x.shape[-2:]) != (self.height, self.width):
            problems.append(
                f"this MAU runs at {self.height}×{self.width} only (its LayerNorms hold one weight per "
                f"channel and cell of the {self.grid[0]}×{self.grid[1]} state grid), got "
                f"{x.shape[-2]}×{x.shape[-1]}; resize the frames, or adapt the model to the new size "
                "(stzoo.training.adapt.adapt(p, height=..., width=...), which re-initialises those weights)"
            )
        if problems:
            raise InputError("; ".join(problems))

    def init_states(self, batch: int, h: int, w: int, like: Tensor) -> tuple[tuple[Tensor, ...], ...]:
        """Zero states for ``h``×``w`` frames (the cells run at (h/sr_size)×(w/sr_size))."""
        z = like.new_zeros(batch, self.num_hidden, h // self.sr_size, w // self.sr_size)
        hist = tuple((z,) * self.tau for _ in range(self.num_layers))
        return (z,) * self.num_layers, hist, hist

    def step(self, frame: Tensor, states: Any) -> tuple[Tensor, Any]:
        """One time step: read ``frame`` (B×C×H×W), return the predicted next frame and the states."""
        ts, t_hist, s_hist = states
        feats = []
        z = frame
        for conv in self.encoder:
            z = F.leaky_relu(conv(z), 0.2)
            feats.append(z)
        s = z  # S^0_t: B×N×h×w
        new_t, new_t_hist, new_s_hist = [], [], []
        for cell, t, th, sh in zip(self.cells, ts, t_hist, s_hist):
            t, s_out = cell(t, s, torch.stack(th), torch.stack(sh))
            new_t.append(t)
            new_t_hist.append(th[1:] + (t,))
            new_s_hist.append(sh[1:] + (s,))
            s = s_out
        out = s
        last = len(self.decoder) - 1
        for i, deconv in enumerate(self.decoder):
            out = deconv(out)
            if i < last:
                out = F.leaky_relu(out, 0.2)
            if self.recall:
                out = out + feats[-2 - i]  # the encoder feature of this size
        return self.readout(out), (tuple(new_t), tuple(new_t_hist), tuple(new_s_hist))


#: OpenSTL's MAU training (configs/mmnist/MAU.py, openstl/methods/mau.py): Adam at lr 1e-3 with a OneCycle
#: schedule, batch 16, 200 epochs of 10,000 sequences (125,000 steps), no gradient clipping; MSE on every
#: one-step prediction (frames 2..20); scheduled sampling with the teacher-forcing probability falling
#: linearly from 1 by 2e-5 per step to 0 at step 50,000 = 0.4 of the run (stzoo's generic schedule).
#: OpenSTL's ``MAU.training_step`` never stores the decreased value (``eta, flag = schedule_sampling(self.eta,
#: ...)`` leaves ``self.eta`` at 1), so there the probability stays at 1 − 2e-5 until step 50,000 and then
#: drops to 0; stzoo follows the schedule as its config describes it (as OpenSTL's PredRNN does).
MAU_RECIPE = Recipe(
    lr=1e-3, batch_size=16, epochs=200, epoch_size=10000, loss="mse", scheduled_sampling=0.4, grad_clip=0.0
)


def _resolution_params(cfg: MAUConfig) -> list[str]:
    return [
        f"cells.{i}.{norm}."
        for i in range(cfg.num_layers)
        for norm in ("norm_t", "norm_t_next", "norm_s", "norm_s_next")
    ]


ARCHITECTURE = register(
    Architecture(
        name="mau",
        model=MAU,
        config=MAUConfig,
        recipe=MAU_RECIPE,
        any_frames=True,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=lambda cfg: cfg.sr_size,
        size_reason=lambda cfg: f"MAU with sr_size={cfg.sr_size} downsamples by {cfg.sr_size}",
        channel_params=lambda cfg: {
            "encoder.0.weight": ChannelParam(1, "in"),
            "readout.weight": ChannelParam(0, "out"),
            "readout.bias": ChannelParam(0, "out"),
        },
        resolution_params=_resolution_params,
        # every cell attends over the last tau steps' states, on a grid sr_size times smaller
        activation_floats=lambda cfg, b, t, h, w: rollout_activation_floats(
            cfg, b, t, h, w, cell_floats=16.0 * cfg.tau, grid=cfg.sr_size
        ),
        tiny_config={
            "frames_in": 4,
            "frames_out": 4,
            "height": 16,
            "width": 16,
            "num_layers": 2,
            "num_hidden": 8,
            "filter_size": 3,
            "sr_size": 2,
            "tau": 3,
        },
        description="MAU (Chang et al., NeurIPS 2021): motion-aware units attending over the last τ steps' states, "
        "between a strided-conv encoder and decoder",
    )
)
