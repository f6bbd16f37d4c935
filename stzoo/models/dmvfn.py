"""DMVFN (Hu et al., CVPR 2023): a Dynamic Multi-scale Voxel Flow Network, one frame ahead per step.

DMVFN predicts frame ``t+1`` from frames ``t−1`` and ``t`` (``I_0``, ``I_1``, B×C×H×W each) by warping
them: a chain of ``n`` Multi-scale Voxel Flow Blocks (MVFBs, ``n = len(num_features)``) refines a
voxel flow ``F`` (B×4×H×W: a 2-D flow for each of the two frames) and a fusion mask ``M`` (B×1×H×W), both
starting at zero::

    Î_0 = warp(I_0, F[:2]),  Î_1 = warp(I_1, F[2:])                     (bilinear backward warping)
    (ΔF, ΔM) = MVFB_i([I_0, I_1, Î_0, Î_1], [M, F])                         block i at scale s_i
    F ← F + r_i·ΔF,  M ← M + r_i·ΔM                                        r_i ∈ {0, 1}: the routing
    Î_{t+1} = clamp(σ(M)·Î_0 + (1 − σ(M))·Î_1, 0, 1)

**MVFB** (``num_features = f``, scale ``s``): the inputs are resized by ``1/s`` (the flow's values too);
two stride-2 3×3 conv + PReLU layers (→ f/2 → f channels, at ``H/4s``), three residual 3×3 conv + PReLU
layers, a squeeze to f/4 channels, upsampled by ``2s`` to ``H/2``; a full-resolution branch (a stride-2
conv to 8 channels and one more conv, at ``H/2``); both concatenated into a 4×4 stride-2 transposed conv
to the 5 channels ``(ΔF, ΔM)``.

**Routing** (the "dynamic" part): ``v = sigmoid(W·AvgPool(conv(ReLU(conv([I_0, I_1])))))`` (one value
per block), ``p = clamp(β·n·v / (Σv + 10⁻⁶), 0, 1)``, ``r = Bernoulli(p)``; a block with ``r_i = 0`` is
skipped. OpenSTL (like the authors' code) samples ``r`` at test time too, so its forecasts are random;
stzoo's ``routing`` setting says how the blocks are chosen at inference:

* ``"threshold"`` (default, deterministic): ``r_i = 1`` where ``p_i ≥ 0.5``, the more likely draw;
* ``"bernoulli"``: OpenSTL's sampling, from PyTorch's random generator (seed it to reproduce a run);
* ``"all"``: every block runs.

Each sample is routed by its own ``p`` (OpenSTL applies sample 0's draw to the whole batch, which makes
a forecast depend on the batch it is in; at batch size 1 the two agree). When no block runs, the
prediction is ``I_0``, the older frame, as in OpenSTL.

**Steps in stzoo's protocol.** :meth:`DMVFN.step` reads frame ``t`` with frame ``t−1`` kept as its state
and returns frame ``t+1``; past the observed frames its own prediction is fed back, so
``predict(horizon=N)`` after ``T`` frames is OpenSTL's ``DMVFN._inference`` (the last two observed
frames, then each prediction shifted in) for any ``N``. The first frame of a clip is read as both
``I_0`` and ``I_1`` (OpenSTL always has two frames). Only the last two frames of the input matter.

Layout and defaults follow OpenSTL's ``DMVFN_Model`` (``openstl/models/dmvfn_model.py``,
``openstl/modules/dmvfn_modules.py`` in OpenSTL v0.3.0) and its ``configs/mmnist/DMVFN.py`` (9 blocks,
features 160×3, 80×3, 44×3 at scales 4, 2, 1; routing width 32; β = 0.5). Two regroupings, neither
changing the function, keep the colour channels in contiguous blocks for ``adapt(channels=…)``: the
frames enter every MVFB channel by channel (``I_0, I_1, Î_0, Î_1`` of channel 0, then of channel 1, …;
the router's ``I_0, I_1`` likewise), and the two convolutions that read the inputs are split into one over
the frames and one over ``[M, F]`` (a single convolution in OpenSTL). The first block's ``M`` and ``F`` are
always zero, so the weights that read them (5 input channels of its two input convolutions, 3,960 values
at the published configs) cannot change anything: the first block has none, and stzoo's count is
OpenSTL's less those (3,518,962 against 3,522,922 at ``configs/mmnist/DMVFN.py``).

Training (:func:`dmvfn_training_forward`): as OpenSTL, every triple of consecutive frames of the
sequence (two observed, one target), routing sampled with a straight-through gradient, and every block's
output supervised (block ``i`` weighted ``γ^{n−1−i}``, γ = 0.8; every block but the last with its own
update applied in full). OpenSTL's loss is a Laplacian-pyramid L1 plus a VGG perceptual term; stzoo uses
the recipe's loss on the final output plus MSE on the others (no pretrained VGG). This module does no I/O.
"""

from __future__ import annotations

import numbers
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
    raise_if_bad_frames,
    register,
)

__all__ = [
    "DMVFN",
    "DMVFNConfig",
    "MVFB",
    "Router",
    "warp",
    "DMVFN_RECIPE",
    "DEEP_SUPERVISION_GAMMA",
    "dmvfn_training_forward",
    "ARCHITECTURE",
]

#: weight of block i's output in the training loss: γ^(n−1−i) (OpenSTL's ``gamma``)
DEEP_SUPERVISION_GAMMA = 0.8


def _int_tuple(name: str, value: Any, allowed: tuple[int, ...] | None = None) -> tuple[int, ...]:
    ok = (
        isinstance(value, (list, tuple))
        and 1 <= len(value) <= 32
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 4 <= v <= 4096 for v in value)
        if allowed is None
        else isinstance(value, (list, tuple))
        and 1 <= len(value) <= 32
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v in allowed for v in value)
    )
    if not ok:
        what = f"one of {list(allowed)}" if allowed else "a whole number between 4 and 4096"
        raise ConfigError(f"dmvfn config {name!r} must list 1 to 32 values, each {what}; got {value!r}")
    return tuple(int(v) for v in value)


@dataclass
class DMVFNConfig(ModelConfig):
    """DMVFN's settings. Defaults: OpenSTL's ``configs/mmnist/DMVFN.py`` (3,518,962 parameters; OpenSTL's
    3,522,922 less 3,960 that read the first block's always-zero mask and flow)."""

    frames_in: int = cfg_field(10, lo=1, hi=1000)  # frames read by default (any T runs; the last two are used)
    frames_out: int = cfg_field(10, lo=1, hi=1000)  # frames predicted by default (any horizon runs)
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame
    height: int = cfg_field(64, lo=1, hi=8192)  # training size (any multiple of 4·max(scales) runs)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    num_features: tuple[int, ...] = cfg_field((160, 160, 160, 80, 80, 80, 44, 44, 44))  # f of each MVFB
    scales: tuple[int, ...] = cfg_field((4, 4, 4, 2, 2, 2, 1, 1, 1))  # s of each MVFB (OpenSTL's scale)
    routing_channels: int = cfg_field(32, lo=1, hi=1024)  # width of the router's convs (routing_out_channels)
    beta: float = cfg_field(0.5, lo=0.0, hi=1000.0)  # β: the expected share of blocks run (p = β·n·v/Σv)
    routing: str = cfg_field("threshold", choices=("threshold", "bernoulli", "all"))  # blocks run at inference

    def validate(self) -> None:
        object.__setattr__(self, "num_features", _int_tuple("num_features", self.num_features))
        object.__setattr__(self, "scales", _int_tuple("scales", self.scales, allowed=(1, 2, 4, 8)))
        super().validate()
        if len(self.scales) != len(self.num_features):
            raise ConfigError(
                f"num_features and scales list one value per block: got {len(self.num_features)} and {len(self.scales)}"
            )
        m = size_multiple(self)
        if self.height % m or self.width % m:
            raise ConfigError(
                f"{_reason(self)}: the training size must be a multiple of {m}, got {self.height}×{self.width}"
            )


def size_multiple(cfg: DMVFNConfig) -> int:
    """Height and width must be multiples of 4·max(scales): the coarsest branch works at H/(4·s)."""
    return 4 * max(cfg.scales)


def _reason(cfg: DMVFNConfig) -> str:
    return f"DMVFN's coarsest block (scale {max(cfg.scales)}) works at 1/{4 * max(cfg.scales)} of the frame"


def warp(img: Tensor, flow: Tensor) -> Tensor:
    """Backward warping: ``img`` (B×C×H×W) sampled at ``pixel + flow`` (B×2×H×W, x then y, in pixels),
    bilinear, border padding, corners aligned (OpenSTL's ``warp``)."""
    _, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, w).expand(1, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, h, 1).expand(1, h, w)
    gx = xs + flow[:, 0] / ((img.shape[3] - 1.0) / 2.0)
    gy = ys + flow[:, 1] / ((img.shape[2] - 1.0) / 2.0)
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


class ConvAct(nn.Module):
    """3×3 convolution (bias) + PReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.act = nn.PReLU(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))


class SplitConvAct(nn.Module):
    """A 3×3 convolution + PReLU over ``[frames, state]``, as two convolutions: ``frames`` (with the bias)
    over the frame channels, ``state`` over the mask and flow (none in the first block, whose mask and flow
    are always zero)."""

    def __init__(self, c_frames: int, c_state: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.frames = nn.Conv2d(c_frames, c_out, 3, stride, 1)
        self.state = nn.Conv2d(c_state, c_out, 3, stride, 1, bias=False) if c_state else None
        self.act = nn.PReLU(c_out)

    def forward(self, frames: Tensor, state: Tensor | None) -> Tensor:
        z = self.frames(frames)
        return self.act(z if self.state is None or state is None else z + self.state(state))


class MVFB(nn.Module):
    """One Multi-scale Voxel Flow Block: ``(frames 4C, [M, F] 5) → (ΔF 4, ΔM 1)``, all at H×W. The first
    block (``first``) reads no [M, F]: they are zero there."""

    def __init__(self, channels: int, features: int, scale: int, first: bool = False) -> None:
        super().__init__()
        f, c4, c_state = features, 4 * channels, 0 if first else 5
        self.scale = scale
        self.down0 = SplitConvAct(c4, c_state, f // 2, 2)  # → f/2 at H/2s
        self.down1 = ConvAct(f // 2, f, 2)  # → f at H/4s
        self.blocks = nn.Sequential(ConvAct(f, f), ConvAct(f, f), ConvAct(f, f))  # residual body
        self.squeeze = ConvAct(f, f // 4)  # → f/4, then upsampled ×2s to H/2
        self.fine0 = SplitConvAct(c4, c_state, 8, 2)  # full-resolution branch → 8 at H/2
        self.fine1 = ConvAct(8, 8)
        self.head = nn.ConvTranspose2d(f // 4 + 8, 5, 4, 2, 1)  # → (ΔF, ΔM) at H

    def forward(self, frames: Tensor, mask: Tensor | None, flow: Tensor | None) -> tuple[Tensor, Tensor]:
        """``frames`` B×4C×H×W (channel by channel), ``mask`` B×1×H×W and ``flow`` B×4×H×W (None: zero)."""
        s = self.scale
        state0 = state = None if mask is None or flow is None else torch.cat((mask, flow), 1)
        fx = frames
        if s != 1:
            fx = F.interpolate(frames, scale_factor=1.0 / s, mode="bilinear", align_corners=False)
            if mask is not None and flow is not None:
                mx = F.interpolate(mask, scale_factor=1.0 / s, mode="bilinear", align_corners=False)
                flx = F.interpolate(flow, scale_factor=1.0 / s, mode="bilinear", align_corners=False) * (1.0 / s)
                state = torch.cat((mx, flx), 1)
        x1 = self.down1(self.down0(fx, state))
        x2 = self.squeeze(self.blocks(x1) + x1)
        x2 = F.interpolate(x2, scale_factor=s * 2, mode="bilinear", align_corners=False)
        x4 = self.fine1(self.fine0(frames, state0))
        out = self.head(torch.cat((x2, x4), 1))
        return out[:, :4], out[:, 4:5]


class Router(nn.Module):
    """``p = clamp(β·n·v / (Σv + 10⁻⁶), 0, 1)``, ``v = σ(fc(AvgPool(conv1(ReLU(conv0([I_0, I_1]))))))``."""

    def __init__(self, channels: int, width: int, blocks: int, beta: float) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(2 * channels, width, 3, 1, 1)  # reads I_0, I_1 channel by channel
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1)
        self.fc = nn.Linear(width, blocks)
        self.blocks, self.beta = blocks, beta

    def forward(self, pair: Tensor) -> Tensor:
        v = self.conv1(F.relu(self.conv0(pair))).mean(dim=(2, 3))
        v = torch.sigmoid(self.fc(v))
        return torch.clamp(self.beta * self.blocks * v / (v.sum(1, keepdim=True) + 1e-6), 0.0, 1.0)


State = tuple[Tensor, ...]


class DMVFN(nn.Module):
    """DMVFN. Any T in, any number of frames out; one frame ahead per step from the last two frames.

    States are ``()`` before the first frame, then ``(previous frame,)``."""

    arch = "dmvfn"
    recurrent = True

    def __init__(self, config: DMVFNConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = self.config = DMVFNConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames_in, self.frames_out = cfg.frames_in, cfg.frames_out
        self.channels, self.height, self.width = cfg.channels, cfg.height, cfg.width
        self.blocks = nn.ModuleList(
            MVFB(cfg.channels, f, s, first=i == 0) for i, (f, s) in enumerate(zip(cfg.num_features, cfg.scales))
        )
        self.router = Router(cfg.channels, cfg.routing_channels, len(cfg.num_features), cfg.beta)

    # -- one prediction ---------------------------------------------------------------------------------
    def routing_probabilities(self, img0: Tensor, img1: Tensor) -> Tensor:
        """``p`` (B×n): the probability that each block runs for this pair of frames."""
        return self.router(torch.stack((img0, img1), 2).flatten(1, 2))

    def _chain(self, img0: Tensor, img1: Tensor, ref: Tensor, supervise: bool) -> tuple[Tensor, list[Tensor]]:
        """Run every block, applying block i's update where ``ref[:, i]`` is 1; returns the final prediction
        and (with ``supervise``) each block but the last's own prediction (its update applied in full)."""
        b, _, h, w = img0.shape
        flow = img0.new_zeros(b, 4, h, w)
        mask = img0.new_zeros(b, 1, h, w)
        w0, w1 = img0, img1
        own: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            frames = torch.stack((img0, img1, w0, w1), 2).flatten(1, 2)  # channel by channel
            d_flow, d_mask = block(frames, mask, flow) if i else block(frames, None, None)  # both 0 at block 0
            if supervise and i < len(self.blocks) - 1:
                f_now, m_now = flow + d_flow, mask + d_mask
                own.append(_merge(warp(img0, f_now[:, :2]), warp(img1, f_now[:, 2:4]), m_now))
            r = ref[:, i].view(b, 1, 1, 1)
            flow = flow + d_flow * r
            mask = mask + d_mask * r
            w0, w1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        return _merge(w0, w1, mask), own

    def predict_next(self, img0: Tensor, img1: Tensor) -> Tensor:
        """Frame t+1 from frames t−1 (``img0``) and t (``img1``), B×C×H×W, routed as ``config.routing`` says."""
        p = self.routing_probabilities(img0, img1)
        if self.config.routing == "threshold":
            ref = (p >= 0.5).to(p.dtype)
        elif self.config.routing == "bernoulli":
            ref = torch.bernoulli(p)
        else:
            ref = torch.ones_like(p)
        merged, _ = self._chain(img0, img1, ref, supervise=False)
        ran = (ref.sum(1) > 0).view(-1, 1, 1, 1)
        return torch.where(ran, merged, img0)  # no block ran: OpenSTL returns the older frame

    def training_outputs(self, img0: Tensor, img1: Tensor) -> list[Tensor]:
        """OpenSTL's training branch: routing sampled with a straight-through gradient; every block's
        prediction (the last one's with the routed updates, the others with their own update in full)."""
        p = self.routing_probabilities(img0, img1)
        ref = p + (torch.bernoulli(p.detach()) - p).detach()  # Bernoulli forward, identity backward
        merged, own = self._chain(img0, img1, ref, supervise=True)
        return [*own, merged]

    # -- the recurrent protocol -----------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks."""
        raise_if_bad_frames(self, x)

    def init_states(self, batch: int, h: int, w: int, like: Tensor) -> State:
        """No frame seen yet."""
        return ()

    def step(self, frame: Tensor, states: State) -> tuple[Tensor, State]:
        """Read frame t (B×C×H×W); return frame t+1 predicted from frames t−1 and t, and the new state."""
        prev = states[0] if states else frame
        return self.predict_next(prev, frame), (frame,)

    def forward(
        self,
        x: Tensor,
        n_out: int | None = None,
        *,
        target: Tensor | None = None,
        teacher_mask: Tensor | None = None,
        return_context: bool = False,
    ) -> Tensor:
        """Predict ``n_out`` frames after the frames in ``x`` (B×T×C×H×W, any T ≥ 1).

        Args:
            x: the observed frames (only the last two are read unless ``return_context``).
            n_out: how many future frames to produce (default: ``frames_out`` of the config).
            target: B×(≥ n_out−1)×C×H×W ground truth, only needed with ``teacher_mask``.
            teacher_mask: scheduled sampling, B×(n_out−1) (or broadcastable) weights in [0, 1]: the frame read
                at future step k ≥ 1 is ``m·target[:, k−1] + (1−m)·prediction[:, k−1]``.
            return_context: also return the one-step predictions made while reading ``x`` (frames 1 … T−1),
                prepended: the output then has T−1+n_out frames.
        """
        self.check_input(x)
        n_out = self.frames_out if n_out is None else int(n_out)
        if n_out < 1:
            raise InputError(f"n_out must be >= 1, got {n_out}")
        t = x.shape[1]
        if teacher_mask is not None:
            if target is None or target.shape[1] < n_out - 1:
                raise InputError("teacher_mask needs `target` with at least n_out-1 frames")
            teacher_mask = teacher_mask.to(x.dtype)
            if teacher_mask.dim() == 2:
                teacher_mask = teacher_mask[:, :, None, None, None]
        outputs: list[Tensor] = []
        first = 0 if return_context else t - 1  # the frames before t−2 only matter for the context
        states: State = () if first == 0 else (x[:, first - 1],)
        pred = x[:, 0]
        for i in range(first, t - 1 + n_out):
            if i < t:
                frame = x[:, i]
            elif teacher_mask is not None:
                k = i - t
                m = teacher_mask[:, k]
                frame = m * target[:, k] + (1 - m) * pred
            else:
                frame = pred
            pred, states = self.step(frame, states)
            if i >= t - 1 or return_context:
                outputs.append(pred)
        return torch.stack(outputs, dim=1)


def _merge(w0: Tensor, w1: Tensor, mask: Tensor) -> Tensor:
    m = torch.sigmoid(mask)
    return torch.clamp(w0 * m + w1 * (1 - m), 0.0, 1.0)


def dmvfn_training_forward(
    model: nn.Module, recipe: Recipe, seq: Tensor, progress: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    """OpenSTL's training regime: every triple of consecutive frames of the T_in + T_out sequence, two
    observed and one predicted; the final prediction is returned for the recipe's loss, every other block's
    output adds its MSE weighted ``γ^(n−1−i)`` (OpenSTL: Laplacian L1 and VGG, see the module docstring)."""
    net = getattr(model, "module", model)
    seq = seq[:, : recipe.frames_in + recipe.frames_out]
    b, t, c, h, w = seq.shape
    if t < 3:
        raise InputError(f"DMVFN trains on triples of frames: the sequence needs at least 3 frames, got {t}")
    img0 = seq[:, : t - 2].reshape(-1, c, h, w)
    img1 = seq[:, 1 : t - 1].reshape(-1, c, h, w)
    gt = seq[:, 2:]
    outs = net.training_outputs(img0, img1)
    n = len(outs)
    extra = sum(
        (DEEP_SUPERVISION_GAMMA ** (n - 1 - i)) * F.mse_loss(o.float(), gt.reshape(-1, c, h, w))
        for i, o in enumerate(outs[:-1])
    )
    return outs[-1].view(b, t - 2, c, h, w), gt, extra if n > 1 else None


#: OpenSTL's DMVFN recipe (configs/mmnist/DMVFN.py): Adam at 1e-4, one-cycle schedule, batch 16, 200 epochs;
#: every frame observed in training (no scheduled sampling)
DMVFN_RECIPE = Recipe(lr=1e-4, batch_size=16, epochs=200, loss="mse", scheduled_sampling=0.0)


def _channel_params(cfg: DMVFNConfig) -> dict[str, ChannelParam]:
    out = {"router.conv0.weight": ChannelParam(1, "in", 2)}  # I_0, I_1 of each channel
    for i in range(len(cfg.num_features)):
        for conv in ("down0", "fine0"):
            out[f"blocks.{i}.{conv}.frames.weight"] = ChannelParam(1, "in", 4)  # I_0, I_1, Î_0, Î_1 per channel
    return out


ARCHITECTURE = register(
    Architecture(
        name="dmvfn",
        model=DMVFN,
        config=DMVFNConfig,
        recipe=DMVFN_RECIPE,
        any_frames=True,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=size_multiple,
        size_reason=_reason,
        channel_params=_channel_params,
        training_forward=dmvfn_training_forward,
        # conservative: every block's features at its scale (a few maps alive each), the flows, masks and warped
        # frames at full size, and the frames kept for the rollout
        activation_floats=lambda cfg, b, t, h, w: (
            b
            * (
                sum(8.0 * f * h * w / (s * s) for f, s in zip(cfg.num_features, cfg.scales))
                + 64.0 * cfg.channels * h * w
                + 2.0 * t * cfg.channels * h * w
            )
        ),
        tiny_config={
            "frames_in": 4,
            "frames_out": 4,
            "height": 16,
            "width": 16,
            "num_features": [16, 16],
            "scales": [2, 1],
            "routing_channels": 4,
            "beta": 0.9,  # both blocks run for most samples: every weight is trained in two steps
        },
        description="DMVFN (Hu et al., CVPR 2023): routed chain of multi-scale voxel-flow blocks warping the "
        "last two frames",
    )
)
