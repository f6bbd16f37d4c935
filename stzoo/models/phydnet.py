"""PhyDNet (Le Guen & Thome, CVPR 2020): a physical branch (PhyCell) beside a ConvLSTM branch.

A frame is encoded to a 2·nf-channel grid at 1/``patch_size`` of its size. Two recurrent branches read
it, each through its own small encoder: **PhyCell** models the part of the dynamics that a linear PDE
explains; a **ConvLSTM** models the rest. Their states are decoded (each through its own small decoder),
summed, and decoded into the next frame (sigmoid output).

Equations (``*`` convolution, ∘ element-wise, σ sigmoid)::

    z = E(frame);  z_p = E_p(z);  z_r = E_r(z)                      (all B×2nf×h×w)
    PhyCell (prediction, then correction by the observation z_p):
      H̃ = H_{t−1} + Φ(H_{t−1})              Φ = conv 1×1 ∘ GroupNorm ∘ conv k×k (k² filters; k = phy_kernel)
      K = σ(W_K * [z_p ; H_{t−1}])           (3×3, the "Kalman gain")
      H_t = H̃ + K ∘ (z_p − H̃)
    ConvLSTM (conv_layers layers; layer 1 reads z_r, layer l the hidden state of layer l−1):
      [i, f, o, g] = W * [X ; h_{t−1}] + b
      c_t = σ(f) ∘ c_{t−1} + σ(i) ∘ tanh(g)      h_t = σ(o) ∘ tanh(c_t)
    frame_{t+1} = σ( D( D_p(H_t) + D_r(h^top_t) ) )

**Moment constraints** (training only). Φ's first convolution holds k² filters w_n (n = k·i + j) of k×k
per input channel. Their moments m_n = M w_n Mᵀ, with M_{a,u} = (u − ⌊(k−1)/2⌋)^a / a!, are pushed
towards the unit matrices e_{i,j}, so that filter n approximates the partial derivative ∂^{i+j}/∂x^i∂y^j:
the moment loss is Σ_{input channels} mean((m − e)²) (:func:`moment_loss`, OpenSTL's ``K2M``). PhyDNet's
training (:func:`phydnet_training_forward`): MSE on every one-step prediction + that loss, with teacher
forcing decided once per batch at a ratio falling with training progress.

Shapes (B batch, h×w = (H/p)×(W/p), p = ``patch_size`` ∈ {2, 4})::

    frame B×C×H×W → E: conv s2 (nf) → conv (nf) → conv s p/2 (2nf) → B×2nf×h×w
    E_p, E_r, D_p, D_r: two 3×3 (transposed) convs each, 2nf → 2nf, GroupNorm(16) + LeakyReLU(0.2)
    D: transposed conv s2 (nf) → transposed conv (nf) → transposed conv s p/2 (C) → B×C×H×W
    states: PhyCell H B×2nf×h×w; ConvLSTM (h, c) per layer, B×conv_hidden×h×w (top layer: 2nf)

The layout follows OpenSTL's ``PhyDNet_Model`` (``openstl/models/phydnet_model.py``,
``openstl/modules/phydnet_modules.py``; Apache-2.0), whose Moving MNIST config
(``configs/mmnist/PhyDNet.py``: patch_size 4, and the sizes OpenSTL fixes in code: nf 32, a one-layer
PhyCell with 49 7×7 filters on 64 channels, a ConvLSTM with hidden sizes 128, 128, 64 and 3×3 kernels)
has 3,091,732 parameters, all used; stzoo's default model is that one. Differences: stzoo does not
compute OpenSTL's two extra decodings of each branch alone (``out_phys``, ``out_conv``, for
visualisation only; no parameters), and keeps no state on the module between calls (OpenSTL's cells
keep theirs in attributes, reset at each call's first step). The moment matrices are constants computed
here, not weights.

Training differs from OpenSTL's ``PhyDNet.training_step`` in one point: that method takes the loss the
model returns (Σ per-frame MSE + moment loss, a scalar) and returns ``MSELoss(that scalar, batch_y)``, the
squared distance between the loss value and the target pixels; stzoo minimises the model's own loss, as
the PhyDNet authors' code does (:func:`phydnet_training_forward`). This module does no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.errors import ConfigError
from stzoo.models.base import Architecture, ChannelParam, ModelConfig, Recipe, cfg_field, raise_if_bad_frames, register
from stzoo.models.recurrent import RecurrentNet

__all__ = [
    "PhyDNet",
    "PhyDNetConfig",
    "PhyCell",
    "ConvLSTMCell",
    "moment_matrix",
    "moment_constraints",
    "moment_loss",
    "phydnet_training_forward",
    "PHYDNET_RECIPE",
    "ARCHITECTURE",
]


@dataclass
class PhyDNetConfig(ModelConfig):
    """PhyDNet's settings. Defaults: OpenSTL's ``configs/mmnist/PhyDNet.py`` (3,091,732 parameters)."""

    frames_in: int = cfg_field(10, lo=1, hi=1000)  # frames read by default (any T runs)
    frames_out: int = cfg_field(10, lo=1, hi=1000)  # frames predicted by default (any horizon runs)
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame
    height: int = cfg_field(64, lo=1, hi=8192)  # training size (any multiple of patch_size runs)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    patch_size: int = cfg_field(4, choices=(2, 4))  # the encoder downsamples by this (OpenSTL's name)
    nf: int = cfg_field(32, lo=16, hi=1024)  # encoder width; both branches run on 2·nf channels (×16)
    phy_kernel: int = cfg_field(7, lo=3, hi=9)  # k: PhyCell's k×k filters, k² of them (odd)
    conv_layers: int = cfg_field(3, lo=1, hi=16)  # ConvLSTM layers (the top one has 2·nf channels)
    conv_hidden: int = cfg_field(128, lo=1, hi=2048)  # hidden channels of the ConvLSTM layers below the top
    conv_kernel: int = cfg_field(3, lo=1, hi=15)  # ConvLSTM kernel (odd)

    def validate(self) -> None:
        super().validate()
        if self.nf % 16:
            raise ConfigError(f"nf must be a multiple of 16 (GroupNorm with 16 groups), got {self.nf}")
        for key in ("phy_kernel", "conv_kernel"):
            if getattr(self, key) % 2 == 0:
                raise ConfigError(f"{key} must be odd so the states keep their size, got {getattr(self, key)}")


# --------------------------------------------------------------------------------------------
# Encoders and decoders
# --------------------------------------------------------------------------------------------
class ConvNormAct(nn.Module):
    """3×3 conv (or transposed conv) → GroupNorm(16) → LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, transposed: bool = False):
        super().__init__()
        if transposed:
            self.conv: nn.Module = nn.ConvTranspose2d(
                c_in, c_out, 3, stride=stride, padding=1, output_padding=1 if stride == 2 else 0
            )
        else:
            self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.norm = nn.GroupNorm(16, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class Encoder(nn.Module):
    """E: B×C×H×W → B×2nf×(H/p)×(W/p) (strides 2, 1, p/2)."""

    def __init__(self, channels: int, nf: int, patch_size: int):
        super().__init__()
        self.layers = nn.Sequential(
            ConvNormAct(channels, nf, 2), ConvNormAct(nf, nf, 1), ConvNormAct(nf, 2 * nf, patch_size // 2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class Decoder(nn.Module):
    """D: B×2nf×h×w → B×C×H×W (transposed strides 2, 1, p/2; the last has no norm / activation)."""

    def __init__(self, channels: int, nf: int, patch_size: int):
        super().__init__()
        s = patch_size // 2
        self.layers = nn.Sequential(
            ConvNormAct(2 * nf, nf, 2, transposed=True), ConvNormAct(nf, nf, 1, transposed=True)
        )
        self.out = nn.ConvTranspose2d(nf, channels, 3, stride=s, padding=1, output_padding=1 if s == 2 else 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.layers(x))


def _branch(dim: int, transposed: bool) -> nn.Sequential:
    """E_p / E_r (convs) and D_p / D_r (transposed convs): two stride-1 layers, dim → dim."""
    return nn.Sequential(ConvNormAct(dim, dim, 1, transposed), ConvNormAct(dim, dim, 1, transposed))


# --------------------------------------------------------------------------------------------
# The two recurrent branches
# --------------------------------------------------------------------------------------------
class PhyCell(nn.Module):
    """H_t = H̃ + K ∘ (z − H̃) with H̃ = H + Φ(H), K = σ(W_K * [z ; H]). z, H: B×dim×h×w."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.phi_conv = nn.Conv2d(dim, kernel * kernel, kernel, padding=kernel // 2)  # the k² "derivative" filters
        self.phi_norm = nn.GroupNorm(kernel, kernel * kernel)
        self.phi_out = nn.Conv2d(kernel * kernel, dim, 1)
        self.gate = nn.Conv2d(2 * dim, dim, 3, padding=1)

    def forward(self, z: Tensor, h: Tensor) -> Tensor:
        k = torch.sigmoid(self.gate(torch.cat([z, h], dim=1)))
        h_tilde = h + self.phi_out(self.phi_norm(self.phi_conv(h)))  # prediction
        return h_tilde + k * (z - h_tilde)  # correction


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer on [X ; h] with bias, gate order i, f, o, g (as OpenSTL's PhyD_ConvLSTM_Cell)."""

    def __init__(self, c_in: int, c_hid: int, kernel: int):
        super().__init__()
        self.c_hid = c_hid
        self.conv = nn.Conv2d(c_in + c_hid, 4 * c_hid, kernel, padding=kernel // 2)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, o, g = torch.split(self.conv(torch.cat([x, h], dim=1)), self.c_hid, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


# --------------------------------------------------------------------------------------------
# The whole net
# --------------------------------------------------------------------------------------------
class PhyDNet(RecurrentNet):
    """PhyCell + ConvLSTM between a shared encoder and decoder. Any T in, any number of frames out.

    The recurrent state, as :meth:`init_states` returns and :meth:`step` carries it, is
    ``(H, hs, cs)``: PhyCell's state, and the ConvLSTM's hidden and cell states per layer.
    """

    arch = "phydnet"
    config_class = PhyDNetConfig

    def __init__(self, config: PhyDNetConfig | None = None, **overrides: Any):
        nn.Module.__init__(self)  # not RecurrentNet's: PhyDNet encodes with convs, not a patch reshape
        cfg = self.config = PhyDNetConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames_in, self.frames_out = cfg.frames_in, cfg.frames_out
        self.channels, self.height, self.width = cfg.channels, cfg.height, cfg.width
        self.patch_size = cfg.patch_size  # the states live on the (H/p)×(W/p) grid (the Forecaster reads this)
        dim = 2 * cfg.nf
        self.dim = dim
        self.hidden = [cfg.conv_hidden] * (cfg.conv_layers - 1) + [dim]
        self.encoder = Encoder(cfg.channels, cfg.nf, cfg.patch_size)  # B×C×H×W → B×dim×h×w
        self.enc_phys = _branch(dim, False)  # E_p
        self.enc_conv = _branch(dim, False)  # E_r
        self.phycell = PhyCell(dim, cfg.phy_kernel)
        self.convlstm = nn.ModuleList(
            ConvLSTMCell(dim if i == 0 else self.hidden[i - 1], c, cfg.conv_kernel) for i, c in enumerate(self.hidden)
        )
        self.dec_phys = _branch(dim, True)  # D_p
        self.dec_conv = _branch(dim, True)  # D_r
        self.decoder = Decoder(cfg.channels, cfg.nf, cfg.patch_size)  # B×dim×h×w → B×C×H×W

    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks."""
        raise_if_bad_frames(self, x)

    def init_states(
        self, batch: int, h: int, w: int, like: Tensor
    ) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Zero states for an ``h``×``w`` state grid (frames of (h·p)×(w·p))."""
        hs = tuple(like.new_zeros(batch, c, h, w) for c in self.hidden)
        return like.new_zeros(batch, self.dim, h, w), hs, hs

    def step(self, frame: Tensor, states: Any) -> tuple[Tensor, Any]:
        """One time step: read ``frame`` (B×C×H×W), return the predicted next frame and the states."""
        h_phys, hs, cs = states
        z = self.encoder(frame)
        h_phys = self.phycell(self.enc_phys(z), h_phys)
        x = self.enc_conv(z)
        new_h, new_c = [], []
        for cell, h, c in zip(self.convlstm, hs, cs):
            x, c = cell(x, h, c)
            new_h.append(x)
            new_c.append(c)
        out = torch.sigmoid(self.decoder(self.dec_phys(h_phys) + self.dec_conv(x)))
        return out, (h_phys, tuple(new_h), tuple(new_c))


# --------------------------------------------------------------------------------------------
# Moment constraints and the training regime
# --------------------------------------------------------------------------------------------
def moment_matrix(k: int, *, dtype: torch.dtype = torch.float64, device: Any = None) -> Tensor:
    """M (k×k): M[a, u] = (u − ⌊(k−1)/2⌋)^a / a!; the moments of a k×k kernel w are M w Mᵀ."""
    u = torch.arange(k, dtype=dtype, device=device) - (k - 1) // 2
    a = torch.arange(k, dtype=dtype, device=device)
    fact = torch.tensor([math.factorial(i) for i in range(k)], dtype=dtype, device=device)
    return u[None, :] ** a[:, None] / fact[:, None]


def moment_constraints(k: int, *, dtype: torch.dtype = torch.float32, device: Any = None) -> Tensor:
    """The targets: filter n = k·i + j should have the unit moment matrix e_{i,j}. k²×k×k."""
    return torch.eye(k * k, dtype=dtype, device=device).view(k * k, k, k)


def moment_loss(model: nn.Module) -> Tensor:
    """Σ over Φ's input channels of mean((M w Mᵀ − e)²) over its k² filters (OpenSTL's K2M loss; the
    moments in float64, the error in float32 as OpenSTL)."""
    w = model.phycell.phi_conv.weight  # k²×dim×k×k
    k = w.shape[-1]
    m = moment_matrix(k, device=w.device)
    moments = torch.einsum("au,ncuv,bv->ncab", m, w.double(), m).float()  # k²×dim×k×k
    target = moment_constraints(k, device=w.device)[:, None]  # k²×1×k×k
    per_channel = ((moments - target) ** 2).mean(dim=(0, 2, 3))  # dim
    return per_channel.sum()


def phydnet_training_forward(
    model: nn.Module, recipe: Recipe, seq: Tensor, progress: float
) -> tuple[Tensor, Tensor, Tensor]:
    """PhyDNet's training forward on a B×(T_in+T_out)×C×H×W batch (OpenSTL's ``PhyDNet_Model.forward``).

    Every one-step prediction (frames 1 … T_in+T_out−1) and its target, and the moment loss divided by
    the number of those predictions: the training code's MSE is the mean over the predicted frames, so
    the sum is OpenSTL's objective (Σ per-frame MSE + moment loss) divided by that number. In the predicted
    part, one draw per batch (from torch's default generator) decides whether every input is the ground
    truth (teacher forcing) or the model's own prediction; the teacher-forcing ratio is
    ``max(0, 1 − progress / recipe.scheduled_sampling)``
    (OpenSTL: 1 − 0.003 · epoch, i.e. 1 → 0.4 over its 200 epochs; ``scheduled_sampling`` = 5/3)."""
    inner = getattr(model, "module", model)
    t_in, t_out = recipe.frames_in, recipe.frames_out
    x, y = seq[:, :t_in], seq[:, t_in : t_in + t_out]
    ratio = max(0.0, 1.0 - progress / recipe.scheduled_sampling) if recipe.scheduled_sampling > 0 else 0.0
    mask = None
    if t_out > 1 and float(torch.rand(())) < ratio:  # torch's generator: seeded by the training code
        mask = torch.ones(seq.shape[0], t_out - 1, dtype=seq.dtype, device=seq.device)
    pred = model(x, t_out, target=y, teacher_mask=mask, return_context=True)
    return pred, seq[:, 1 : t_in + t_out], moment_loss(inner) / (t_in - 1 + t_out)


#: OpenSTL's PhyDNet training (configs/mmnist/PhyDNet.py, openstl/methods/phydnet.py): Adam at lr 1e-3 with a
#: OneCycle schedule, batch 16, 200 epochs of 10,000 sequences, no gradient clipping; teacher forcing at ratio
#: 1 − 0.003 · epoch (1 → 0.4 over the run: ``scheduled_sampling`` = 5/3 of the run to reach 0).
PHYDNET_RECIPE = Recipe(
    lr=1e-3, batch_size=16, epochs=200, epoch_size=10000, loss="mse", scheduled_sampling=5 / 3, grad_clip=0.0
)

ARCHITECTURE = register(
    Architecture(
        name="phydnet",
        model=PhyDNet,
        config=PhyDNetConfig,
        recipe=PHYDNET_RECIPE,
        any_frames=True,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=lambda cfg: cfg.patch_size,
        size_reason=lambda cfg: f"PhyDNet with patch_size={cfg.patch_size} downsamples by {cfg.patch_size}",
        channel_params=lambda cfg: {
            "encoder.layers.0.conv.weight": ChannelParam(1, "in"),
            "decoder.out.weight": ChannelParam(1, "out"),  # ConvTranspose2d: in × out × k × k
            "decoder.out.bias": ChannelParam(0, "out"),
        },
        # peak memory estimate: states + gates per step; outputs per frame
        activation_floats=lambda cfg, b, t, h, w: (
            b * t * h * w * (64.0 + 16.0 * (cfg.conv_hidden + cfg.nf) / cfg.patch_size**2)
        ),
        tiny_config={
            "frames_in": 4,
            "frames_out": 4,
            "height": 16,
            "width": 16,
            "nf": 16,
            "conv_layers": 2,
            "conv_hidden": 8,
        },
        description="PhyDNet (Le Guen & Thome, CVPR 2020): a PDE-constrained PhyCell beside a ConvLSTM, between a "
        "shared conv encoder and decoder",
        training_forward=phydnet_training_forward,
    )
)
