"""TAU: Temporal Attention Unit inside the SimVP framework (Tan et al., CVPR 2023).

Reads top to bottom like the paper:

1. a spatial **encoder** turns every frame into a ``hid_S``-channel feature map at 1/4 size,
2. a **translator** stacks the T frames along channels (T·hid_S) and runs ``N_T`` TAU blocks,
   each = statical attention × dynamical attention × input, followed by a conv MLP,
3. a spatial **decoder** maps features back to frames, with a skip from the first encoder layer.

The parameter layout follows the TAU authors' reference implementation, so the paper's Moving MNIST
configuration has exactly 44,656,001 parameters. This module does no I/O; build it from a plain dict
with :func:`stzoo.models.build_model` or ``TAU(**config)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from stzoo.errors import ConfigError
from stzoo.models.base import Architecture, ChannelParam, ModelConfig, Recipe, cfg_field, raise_if_bad_frames, register

__all__ = ["TAU", "TAUConfig", "ARCHITECTURE"]


@dataclass
class TAUConfig(ModelConfig):
    """TAU's settings. The defaults are the paper's Moving MNIST configuration (44,656,001 parameters)."""

    frames: int = cfg_field(10, lo=1, hi=1000)  # T: frames read and predicted per call
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame
    height: int = cfg_field(64, lo=1, hi=8192)  # training size (any multiple of the downsampling runs)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    hid_S: int = cfg_field(64, lo=2, hi=1024)  # channels of the spatial encoder / decoder (even)
    hid_T: int = cfg_field(512, lo=1, hi=8192)  # channels inside the translator's hidden blocks
    N_S: int = cfg_field(4, lo=2, hi=16)  # encoder (= decoder) layers, strides 1,2,1,2,... (even)
    N_T: int = cfg_field(8, lo=2, hi=64)  # TAU blocks in the translator
    mlp_ratio: float = cfg_field(8.0, lo=0.01, hi=64.0)  # MLP expansion inside each TAU block
    drop: float = cfg_field(0.0, lo=0.0, hi=0.99)  # dropout in the MLPs
    drop_path: float = cfg_field(0.0, lo=0.0, hi=0.99)  # stochastic depth, rising linearly over the blocks
    kernel_size: int = cfg_field(21, lo=3, hi=63)  # statical attention's nominal kernel (5×5 ∘ 7×7 dil. 3 at 21)
    spatio_kernel: int = cfg_field(3, lo=1, hi=15)  # conv kernel of the encoder / decoder (odd)

    def validate(self) -> None:
        super().validate()
        if self.N_S % 2:
            raise ConfigError(f"TAU needs an even N_S >= 2 (strides 1,2,1,2,...), got N_S={self.N_S}")
        if self.hid_S % 2:
            raise ConfigError(f"hid_S must be even (GroupNorm with 2 groups), got {self.hid_S}")
        if self.spatio_kernel % 2 == 0:
            raise ConfigError(f"spatio_kernel must be odd so frames keep their size, got {self.spatio_kernel}")


# --------------------------------------------------------------------------------------------
# Spatial encoder / decoder
# --------------------------------------------------------------------------------------------
class ConvNormAct(nn.Module):
    """3×3 conv (optionally stride 2, or followed by PixelShuffle(2)) → GroupNorm(2) → SiLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, down: bool = False, up: bool = False):
        super().__init__()
        stride = 2 if down else 1
        padding = (kernel - stride + 1) // 2
        if up:
            self.conv = nn.Sequential(nn.Conv2d(c_in, c_out * 4, kernel, 1, padding), nn.PixelShuffle(2))
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding)
        self.norm = nn.GroupNorm(2, c_out)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


def _strides(n: int) -> list[bool]:
    """Which of the ``n`` spatial layers change resolution: every second one (1, 2, 1, 2, ...)."""
    return [i % 2 == 1 for i in range(n)]


class Encoder(nn.Module):
    def __init__(self, c_in: int, hid: int, n_layers: int, kernel: int):
        super().__init__()
        downs = _strides(n_layers)
        self.layers = nn.ModuleList(
            ConvNormAct(c_in if i == 0 else hid, hid, kernel, down=d) for i, d in enumerate(downs)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        skip = x = self.layers[0](x)
        for layer in self.layers[1:]:
            x = layer(x)
        return x, skip


class Decoder(nn.Module):
    def __init__(self, hid: int, c_out: int, n_layers: int, kernel: int):
        super().__init__()
        ups = list(reversed(_strides(n_layers)))
        self.layers = nn.ModuleList(ConvNormAct(hid, hid, kernel, up=u) for u in ups)
        self.readout = nn.Conv2d(hid, c_out, 1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = layer(x)
        x = self.layers[-1](x + skip)
        return self.readout(x)


# --------------------------------------------------------------------------------------------
# Temporal Attention Unit
# --------------------------------------------------------------------------------------------
def large_kernel_convs(dim: int, kernel_size: int = 21, dilation: int = 3) -> tuple[nn.Conv2d, nn.Conv2d]:
    """A ``kernel_size``² depthwise kernel decomposed into two (the large-kernel attention of VAN, used by
    TAU's statical attention and SimVP's gSTA): a (2·dilation − 1)² depthwise conv, then a depthwise conv
    of about ``kernel_size / dilation`` (made odd) with that dilation. Both keep the frame size."""
    d_k = 2 * dilation - 1
    dd_k = kernel_size // dilation + ((kernel_size // dilation) % 2 - 1)
    return (
        nn.Conv2d(dim, dim, d_k, padding=(d_k - 1) // 2, groups=dim),
        nn.Conv2d(dim, dim, dd_k, padding=dilation * (dd_k - 1) // 2, groups=dim, dilation=dilation),
    )


class TemporalAttentionModule(nn.Module):
    """SA(h) · DA(h) · h.

    Statical attention SA: 5×5 depthwise conv → 7×7 depthwise conv with dilation 3 → 1×1 conv
    (the paper's "21×21" large kernel, decomposed; the composed receptive field spans 5 + 6·3 = 23).
    Dynamical attention DA: squeeze-excitation over channels, sigmoid(FC(ReLU(FC(avgpool(h))))), both
    FCs without bias.
    """

    def __init__(self, dim: int, kernel_size: int = 21, dilation: int = 3, reduction: int = 16):
        super().__init__()
        self.conv0, self.conv_spatial = large_kernel_convs(dim, kernel_size, dilation)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        # The reference implementation divides by max(dim // 16, 4): hidden = dim // that.
        squeeze = dim // max(dim // reduction, 4)
        self.fc = nn.Sequential(
            nn.Linear(dim, squeeze, bias=False),
            nn.ReLU(),
            nn.Linear(squeeze, dim, bias=False),
            nn.Sigmoid(),
        )

    def statical(self, h: Tensor) -> Tensor:
        return self.conv1(self.conv_spatial(self.conv0(h)))

    def dynamical(self, h: Tensor) -> Tensor:
        return self.fc(h.mean(dim=(2, 3)))[:, :, None, None]

    def forward(self, h: Tensor) -> Tensor:
        return self.statical(h) * self.dynamical(h) * h


class TemporalAttention(nn.Module):
    """1×1 conv → GELU → TAU attention → 1×1 conv, plus the shortcut."""

    def __init__(self, dim: int, kernel_size: int = 21):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.tau = TemporalAttentionModule(dim, kernel_size)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_2(self.tau(self.act(self.proj_1(x)))) + x


class MixMlp(nn.Module):
    """1×1 (expand) → 3×3 depthwise → GELU → 1×1 (project)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.dwconv(self.fc1(x))))))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class TAUBlock(nn.Module):
    """x + s1 · TA(BN(x)), then x + s2 · MLP(BN(x)); optionally a 1×1 conv to a new width.

    The attention unit is :attr:`attention` (built as ``attention(dim, kernel_size)``): SimVP's gSTA block
    is this block with spatial attention."""

    #: the attention unit (TAU's: temporal attention)
    attention: type[nn.Module] = TemporalAttention

    def __init__(
        self,
        dim: int,
        out_dim: int,
        kernel_size: int,
        mlp_ratio: float,
        drop: float,
        drop_path: float,
        init_value: float = 1e-2,
    ):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = self.attention(dim, kernel_size)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = MixMlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), init_value))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), init_value))
        self.drop_path = DropPath(drop_path)
        self.reduction = nn.Conv2d(dim, out_dim, 1) if dim != out_dim else None

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))
        return x if self.reduction is None else self.reduction(x)


class Translator(nn.Module):
    """N_T TAU blocks (:attr:`block`) over B×(T·hid_S)×H'×W'; the first narrows to hid_T, the last widens back."""

    #: the block class
    block: type[nn.Module] = TAUBlock

    @staticmethod
    def drop_path_rates(n_blocks: int, drop_path: float) -> list[float]:
        """Stochastic-depth rate of each block: linspace(0, drop_path, N_T)."""
        return torch.linspace(0, drop_path, n_blocks, device="cpu").tolist()

    def __init__(
        self, c_in: int, c_hid: int, n_blocks: int, kernel_size: int, mlp_ratio: float, drop: float, drop_path: float
    ):
        super().__init__()
        rates = self.drop_path_rates(n_blocks, drop_path)
        widths = [c_in] + [c_hid] * (n_blocks - 1) + [c_in]
        self.blocks = nn.ModuleList(
            self.block(widths[i], widths[i + 1], kernel_size, mlp_ratio, drop, rates[i]) for i in range(n_blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


# --------------------------------------------------------------------------------------------
# The whole net
# --------------------------------------------------------------------------------------------
class EncoderTranslatorDecoder(nn.Module):
    """What TAU and SimVP share around their translators: each frame encoded alone, the T encodings stacked
    on channels for the translator, each frame decoded alone with its encoder skip. Subclasses build
    ``encoder``, ``translator``, ``decoder`` and set ``hid_S``."""

    hid_S: int

    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks."""
        raise_if_bad_frames(self, x)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        b = x.shape[0]
        z, skip = self.encoder(rearrange(x, "b t c h w -> (b t) c h w"))  # (B·T)×hid_S×H'×W'
        z = self.translator(rearrange(z, "(b t) c h w -> b (t c) h w", b=b))  # frames stacked on channels
        y = self.decoder(rearrange(z, "b (t c) h w -> (b t) c h w", c=self.hid_S), skip)
        return rearrange(y, "(b t) c h w -> b t c h w", b=b)


class TAU(EncoderTranslatorDecoder):
    """SimVP-style TAU. Maps B×T×C×H×W frames to the next T frames (same shape).

    ``height`` and ``width`` must be divisible by ``2 ** (N_S // 2)``. ``height``/``width`` in the
    config are the training size; any size that satisfies the divisibility runs.
    """

    arch = "tau"
    recurrent = False

    def __init__(self, config: TAUConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = TAUConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames, self.channels = cfg.frames, cfg.channels
        self.frames_in = self.frames_out = cfg.frames
        self.height, self.width = cfg.height, cfg.width
        self.hid_S = cfg.hid_S
        self.downsample = 2 ** (cfg.N_S // 2)
        self.encoder = Encoder(cfg.channels, cfg.hid_S, cfg.N_S, cfg.spatio_kernel)  # (B·T)×hid_S×H/4×W/4
        self.translator = Translator(
            cfg.frames * cfg.hid_S, cfg.hid_T, cfg.N_T, cfg.kernel_size, cfg.mlp_ratio, cfg.drop, cfg.drop_path
        )  # B×(T·hid_S)×H/4×W/4
        self.decoder = Decoder(cfg.hid_S, cfg.channels, cfg.N_S, cfg.spatio_kernel)  # (B·T)×C×H×W


# --------------------------------------------------------------------------------------------
# What generic code reads
# --------------------------------------------------------------------------------------------
ARCHITECTURE = register(
    Architecture(
        name="tau",
        model=TAU,
        config=TAUConfig,
        recipe=Recipe(loss="mse+ddr", alpha=0.1),
        any_frames=False,
        spec_keys={
            "frames_in": "frames",
            "frames_out": "frames",
            "channels": "channels",
            "height": "height",
            "width": "width",
        },
        size_multiple=lambda cfg: 2 ** (cfg.N_S // 2),
        size_reason=lambda cfg: f"TAU with N_S={cfg.N_S} downsamples by {2 ** (cfg.N_S // 2)}",
        channel_params=lambda cfg: {
            "encoder.layers.0.conv.weight": ChannelParam(1, "in"),
            "decoder.readout.weight": ChannelParam(0, "out"),
            "decoder.readout.bias": ChannelParam(0, "out"),
        },
        # the translator's first block works on T·hid_S channels; the last one widens back to T·hid_S
        frames_params=lambda cfg: ["translator.blocks.0.", f"translator.blocks.{cfg.N_T - 1}.reduction."],
        # peak memory estimate: measured ~7.4·hid_S per pixel-frame
        activation_floats=lambda cfg, b, t, h, w: 16.0 * cfg.hid_S * b * t * h * w,
        tiny_config={
            "frames": 4,
            "height": 16,
            "width": 16,
            "hid_S": 4,
            "hid_T": 32,
            "N_S": 4,
            "N_T": 2,
            "mlp_ratio": 2.0,
        },
        description="TAU (Tan et al., CVPR 2023): SimVP encoder/decoder around Temporal Attention Units",
    )
)
