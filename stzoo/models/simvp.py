"""SimVP: an encoder, a translator over the stacked frames, a decoder (Gao et al., CVPR 2022; Tan et al. 2022).

SimVP maps T frames to the next T in one pass, with no recurrence:

1. a spatial **encoder** (shared with :mod:`stzoo.models.tau`) turns each frame into a ``hid_S``-channel
   map at ``1/2^(N_S/2)`` size; its first layer's output is kept as a skip,
2. a **translator** stacks the T maps on channels, ``z ∈ R^{B×(T·hid_S)×H'×W'}``, and mixes space and
   time with 2-D convolutions only. Two translators (``model_type``):

   * ``"incepu"`` — SimVP (v1, CVPR 2022): a U-shaped stack of ``N_T`` Inception encoder blocks and
     ``N_T`` decoder blocks. Each block is ``y = Σ_{k∈{3,5,7,11}} LReLU_0.2(GN_g(GConv_k,g(W_1 x)))``
     (a 1×1 conv to ``hid_T/2`` channels, then four grouped k×k convs with ``g = 8`` groups, each
     followed by GroupNorm(g) and LeakyReLU(0.2), summed). Decoder block ``i ≥ 1`` reads
     ``[z, e_{N_T-1-i}]`` (its input concatenated with the matching encoder output), the last one
     writes ``T·hid_S`` channels;
   * ``"gsta"`` — SimVP-gSTA (SimVPv2, Tan et al. 2022): ``N_T`` gated spatiotemporal attention
     blocks, each

        ``x ← x + s₁ ⊙ (P₂ A(GELU(P₁ BN₁(x))) + BN₁(x))``, with
        ``A(h) = σ(g) ⊙ f``, ``[f; g] = W (DW_7,d3(DW_5(h)))`` (``W``: 1×1 conv to 2× the channels),
        ``x ← x + s₂ ⊙ MLP(BN₂(x))``, ``MLP = 1×1 → 3×3 depthwise → GELU → 1×1`` (``mlp_ratio``),

     where the first block narrows to ``hid_T`` and the last widens back to ``T·hid_S`` with a 1×1
     ``reduction`` conv after the block (OpenSTL's ``MetaBlock``);
   * the ten MetaFormer translators of OpenSTL's MetaVP benchmark — ``"vit"``, ``"swin"``, ``"mlp"``
     (MLP-Mixer), ``"convmixer"``, ``"uniformer"``, ``"poolformer"``, ``"convnext"``, ``"van"``,
     ``"hornet"``, ``"moga"`` (MogaNet) — the same stack of ``N_T`` ``MetaBlock`` s with another block
     inside (:mod:`stzoo.models.simvp_translators` states each one's equations). Two of them fix
     something of the resolution: MLP-Mixer's token MLP has one weight per position of the H'×W'
     map the config's ``height`` / ``width`` give (those sizes only), and Swin's window (7 if H' is a
     multiple of 7, else max(4, H' // 16), at most 8) comes from the config's ``height``, so frames must
     be multiples of ``2^(N_S/2) · window``,
3. a spatial **decoder** (shared with TAU) maps every frame's features back to a frame; the encoder
   skip is added before its last layer.

The layout follows OpenSTL's ``SimVP_Model`` (``openstl/models/simvp_model.py``, modules in
``openstl/modules/simvp_modules.py``), so OpenSTL's Moving MNIST configs have exactly OpenSTL's
parameter counts: ``configs/mmnist/simvp/SimVP_IncepU.py`` 57,946,113 and ``SimVP_gSTA.py``
46,769,665 (every OpenSTL tensor reaches the output; none is left out). OpenSTL's SimVP encoder and
decoder are the ones its TAU uses (TAU *is* ``SimVP_Model(model_type='tau')``), the skip included,
so :class:`~stzoo.models.tau.Encoder` / :class:`~stzoo.models.tau.Decoder` are reused unchanged.

What follows OpenSTL rather than the SimVP v1 paper's own code (A4Bio/SimVP): there, the encoder /
decoder use LeakyReLU(0.2), transposed convs to upsample and a *concatenated* skip (the last decoder
layer reads 2·hid_S channels), and its defaults are hid_T 256, groups 4, lr 0.01; OpenSTL's
``SimVP_IncepU`` keeps v1's translator (the same ``Mid_Xnet``) inside the SimVPv2 encoder / decoder
(SiLU, PixelShuffle, additive skip) and uses groups 8, hid_T 512, lr 1e-3, as here.

Training-only details kept from OpenSTL: the gSTA (and MetaFormer, ConvMixer excepted) blocks'
stochastic-depth rates are ``linspace(0.01, drop_path, N_T)`` for blocks ``0 … N_T - 2`` and
``drop_path`` for the last block (so even ``drop_path=0`` drops the first blocks' branches with
probability ≤ 0.01 while training);
the encoder / decoder convs start from a truncated normal (std 0.02, zero bias) and the gSTA blocks'
convs from N(0, 2 / fan_out) with zero bias, as OpenSTL initialises them. This module does no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
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
    raise_if_bad_frames,
    register,
)
from stzoo.models.simvp_translators import (
    METAFORMER_TYPES,
    MODEL_TYPE_ALIASES,
    MetaTranslator,
    check_metaformer_widths,
    swin_window,
)
from stzoo.models.tau import (
    ConvNormAct,
    Decoder,
    Encoder,
    EncoderTranslatorDecoder,
    TAUBlock,
    Translator,
    large_kernel_convs,
)

__all__ = ["SimVP", "SimVPConfig", "ARCHITECTURE", "INCEP_KERNELS", "INCEP_GROUPS", "MODEL_TYPES"]

#: kernel sizes of the four parallel branches of an IncepU block (OpenSTL's ``incep_ker``, fixed there)
INCEP_KERNELS = (3, 5, 7, 11)
#: groups of the IncepU branches' convs and GroupNorms (OpenSTL: 8, or 1 when hid_T/2 is not a multiple)
INCEP_GROUPS = 8
#: every translator (``model_type``): SimVP v1's, gSTA and the ten MetaFormers, spelt as OpenSTL's configs
MODEL_TYPES = ("incepu", "gsta", *METAFORMER_TYPES)


@dataclass
class SimVPConfig(ModelConfig):
    """SimVP's settings. The defaults are OpenSTL's Moving MNIST ``SimVP_gSTA.py`` (46,769,665
    parameters); ``model_type="incepu"`` with the same defaults is ``SimVP_IncepU.py`` (57,946,113), and
    each MetaFormer ``model_type`` with them is OpenSTL's ``SimVP_<type>.py`` (e.g. ``"vit"`` 46,102,273)."""

    frames: int = cfg_field(10, lo=1, hi=1000)  # T: frames read and predicted per call
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame
    height: int = cfg_field(64, lo=1, hi=8192)  # training size (any multiple of the downsampling runs)
    width: int = cfg_field(64, lo=1, hi=8192)  # (training width)
    model_type: str = cfg_field("gsta", choices=MODEL_TYPES)  # translator: IncepU (v1), gSTA (v2) or a MetaFormer
    hid_S: int = cfg_field(64, lo=2, hi=1024)  # channels of the spatial encoder / decoder (even)
    hid_T: int = cfg_field(512, lo=2, hi=8192)  # channels inside the translator
    N_S: int = cfg_field(4, lo=2, hi=16)  # encoder (= decoder) layers, strides 1,2,1,2,... (even)
    N_T: int = cfg_field(8, lo=2, hi=64)  # translator blocks (IncepU: encoder and decoder blocks each)
    mlp_ratio: float = cfg_field(8.0, lo=0.01, hi=64.0)  # not IncepU / ConvMixer: MLP expansion in each block
    drop: float = cfg_field(0.0, lo=0.0, hi=0.99)  # not IncepU / ConvMixer: dropout in the MLPs
    drop_path: float = cfg_field(0.0, lo=0.0, hi=0.99)  # not IncepU / ConvMixer: stochastic depth of the last block
    kernel_size: int = cfg_field(21, lo=3, hi=63)  # gSTA only: attention's nominal kernel (5×5 ∘ 7×7 dil. 3)
    spatio_kernel: int = cfg_field(3, lo=1, hi=15)  # conv kernel of the encoder / decoder (odd)

    def validate(self) -> None:
        if isinstance(self.model_type, str):  # OpenSTL writes 'IncepU' / 'gSTA' / 'MLPMixer' / 'MogaNet'
            kind = self.model_type.lower()
            object.__setattr__(self, "model_type", MODEL_TYPE_ALIASES.get(kind, kind))
        super().validate()
        if self.N_S % 2:
            raise ConfigError(f"SimVP needs an even N_S >= 2 (strides 1,2,1,2,...), got N_S={self.N_S}")
        if self.hid_S % 2:
            raise ConfigError(f"hid_S must be even (GroupNorm with 2 groups), got {self.hid_S}")
        if self.spatio_kernel % 2 == 0:
            raise ConfigError(f"spatio_kernel must be odd so frames keep their size, got {self.spatio_kernel}")
        if self.model_type == "incepu":
            g = incep_groups(self.hid_T)
            if (self.frames * self.hid_S) % g:
                raise ConfigError(
                    f"the IncepU translator's last block writes frames·hid_S = "
                    f"{self.frames * self.hid_S} channels through GroupNorm({g}) "
                    f"(hid_T/2 = {self.hid_T // 2} is a multiple of "
                    f"{INCEP_GROUPS}): frames·hid_S must be a multiple of {g}"
                )
        elif self.model_type == "gsta":
            if min(int(self.hid_T * self.mlp_ratio), int(self.frames * self.hid_S * self.mlp_ratio)) < 1:
                raise ConfigError(f"mlp_ratio={self.mlp_ratio} leaves the gSTA MLP with no hidden channel")
        else:
            check_metaformer_widths(self.model_type, (self.frames * self.hid_S, self.hid_T), self.mlp_ratio)
            down = 2 ** (self.N_S // 2)
            if self.height % down or self.width % down:
                raise ConfigError(
                    f"model_type={self.model_type!r} builds weights for the translator's H'×W' map: height "
                    f"and width ({self.height}×{self.width}) must be multiples of 2^(N_S/2) = {down}"
                )
            if self.model_type == "swin":
                window, _ = swin_window(self.height // down, self.width // down)
                if (self.height // down) % window or (self.width // down) % window:
                    raise ConfigError(
                        f"Swin's {window}×{window} windows must tile the {self.height // down}×"
                        f"{self.width // down} translator map (height and width over {down})"
                    )

    def resolution(self) -> tuple[int, int]:
        """H'×W', the translator's map at the config's height and width."""
        down = 2 ** (self.N_S // 2)
        return self.height // down, self.width // down


def incep_groups(hid_T: int) -> int:
    """Groups of the IncepU branches: 8, or 1 when their input width ``hid_T // 2`` is not a multiple of 8."""
    return INCEP_GROUPS if (hid_T // 2) % INCEP_GROUPS == 0 else 1


# --------------------------------------------------------------------------------------------
# IncepU translator (SimVP v1)
# --------------------------------------------------------------------------------------------
class GroupConvNormAct(nn.Module):
    """k×k grouped conv (same size) → GroupNorm(groups) → LeakyReLU(0.2). OpenSTL's ``GroupConv2d``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__()
        groups = groups if c_in % groups == 0 else 1
        self.conv = nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2, groups=groups)
        self.norm = nn.GroupNorm(groups, c_out)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class InceptionBlock(nn.Module):
    """1×1 conv to ``c_hid``, then the sum of the parallel k×k branches (k = 3, 5, 7, 11) to ``c_out``.
    OpenSTL's ``gInception_ST``."""

    def __init__(self, c_in: int, c_hid: int, c_out: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_hid, 1)
        self.branches = nn.ModuleList(GroupConvNormAct(c_hid, c_out, k, groups) for k in INCEP_KERNELS)

    def forward(self, x: Tensor) -> Tensor:
        z = self.conv1(x)  # B×c_hid×H'×W'
        y = self.branches[0](z)
        for branch in self.branches[1:]:
            y = y + branch(z)
        return y  # B×c_out×H'×W'


class IncepUTranslator(nn.Module):
    """U-net of Inception blocks over B×(T·hid_S)×H'×W'. Encoder: c_in → hid → ... → hid (``n`` blocks);
    decoder: hid → hid, then ``n - 1`` blocks reading [z, skip] (2·hid) → hid, the last → c_in."""

    def __init__(self, c_in: int, c_hid: int, n_blocks: int):
        super().__init__()
        g, half = incep_groups(c_hid), c_hid // 2
        self.enc = nn.ModuleList(InceptionBlock(c_in if i == 0 else c_hid, half, c_hid, g) for i in range(n_blocks))
        self.dec = nn.ModuleList(
            InceptionBlock(c_hid if i == 0 else 2 * c_hid, half, c_in if i == n_blocks - 1 else c_hid, g)
            for i in range(n_blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        z = x
        for i, block in enumerate(self.enc):
            z = block(z)
            if i < len(self.enc) - 1:
                skips.append(z)  # e_0 ... e_{n-2}
        z = self.dec[0](z)
        for i in range(1, len(self.dec)):
            z = self.dec[i](torch.cat([z, skips[-i]], dim=1))  # [z, e_{n-1-i}]
        return z


# --------------------------------------------------------------------------------------------
# gSTA translator (SimVPv2)
# --------------------------------------------------------------------------------------------
class GatedAttention(nn.Module):
    """Large-kernel attention with a gate: 5×5 depthwise → 7×7 depthwise with dilation 3 → 1×1 conv to
    2·dim channels [f; g] → σ(g) ⊙ f. OpenSTL's ``AttentionModule``."""

    def __init__(self, dim: int, kernel_size: int = 21, dilation: int = 3):
        super().__init__()
        self.conv0, self.conv_spatial = large_kernel_convs(dim, kernel_size, dilation)
        self.conv1 = nn.Conv2d(dim, 2 * dim, 1)

    def forward(self, h: Tensor) -> Tensor:
        f, g = self.conv1(self.conv_spatial(self.conv0(h))).chunk(2, dim=1)
        return torch.sigmoid(g) * f


class SpatialAttention(nn.Module):
    """1×1 conv → GELU → gated attention → 1×1 conv, plus the shortcut."""

    def __init__(self, dim: int, kernel_size: int = 21):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.gate = GatedAttention(dim, kernel_size)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_2(self.gate(self.act(self.proj_1(x)))) + x


class GSTABlock(TAUBlock):
    """x + s1 · SA(BN(x)), then x + s2 · MLP(BN(x)); then a 1×1 conv to a new width where it changes.
    OpenSTL's ``MetaBlock`` holding a ``GASubBlock``: TAU's block with spatial attention, initialised as
    OpenSTL initialises it."""

    attention = SpatialAttention

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
        super().__init__(dim, out_dim, kernel_size, mlp_ratio, drop, drop_path, init_value)
        for m in (*self.attn.modules(), *self.mlp.modules()):  # OpenSTL's GASubBlock._init_weights
            if isinstance(m, nn.Conv2d) and not m.weight.is_meta:  # (nothing to draw when only counting)
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(m.bias)


def gsta_drop_path_rates(n_blocks: int, drop_path: float) -> list[float]:
    """OpenSTL's ``MidMetaNet`` rule: linspace(0.01, drop_path, N_T) for blocks 0..N_T-2, drop_path for the last."""
    rates = torch.linspace(1e-2, drop_path, n_blocks, device="cpu").tolist()
    return rates[:-1] + [float(drop_path)]


class GSTATranslator(Translator):
    """N_T gSTA blocks over B×(T·hid_S)×H'×W'; the first narrows to hid_T, the last widens back."""

    block = GSTABlock
    drop_path_rates = staticmethod(gsta_drop_path_rates)


# --------------------------------------------------------------------------------------------
# The whole net
# --------------------------------------------------------------------------------------------
class SimVP(EncoderTranslatorDecoder):
    """SimVP with the IncepU or the gSTA translator. Maps B×T×C×H×W frames to the next T frames.

    ``height`` and ``width`` must be divisible by ``2 ** (N_S // 2)``; the config's ``height``/``width``
    are the training size, any size that satisfies the divisibility runs.
    """

    arch = "simvp"
    recurrent = False

    def __init__(self, config: SimVPConfig | None = None, **overrides):
        super().__init__()
        cfg = self.config = SimVPConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames, self.channels = cfg.frames, cfg.channels
        self.frames_in = self.frames_out = cfg.frames
        self.height, self.width = cfg.height, cfg.width
        self.hid_S = cfg.hid_S
        self.downsample = 2 ** (cfg.N_S // 2)
        self.encoder = Encoder(cfg.channels, cfg.hid_S, cfg.N_S, cfg.spatio_kernel)  # (B·T)×hid_S×H'×W'
        width = cfg.frames * cfg.hid_S
        if cfg.model_type == "incepu":
            self.translator: nn.Module = IncepUTranslator(width, cfg.hid_T, cfg.N_T)  # B×(T·hid_S)×H'×W'
        elif cfg.model_type == "gsta":
            self.translator = GSTATranslator(
                width, cfg.hid_T, cfg.N_T, cfg.kernel_size, cfg.mlp_ratio, cfg.drop, cfg.drop_path
            )
        else:
            rates = [0.0] * cfg.N_T if cfg.model_type == "convmixer" else gsta_drop_path_rates(cfg.N_T, cfg.drop_path)
            self.translator = MetaTranslator(
                cfg.model_type, width, cfg.hid_T, cfg.N_T, cfg.resolution(), cfg.mlp_ratio, cfg.drop, rates
            )
        self.decoder = Decoder(cfg.hid_S, cfg.channels, cfg.N_S, cfg.spatio_kernel)  # (B·T)×C×H×W
        spatial = [m for part in (self.encoder, self.decoder) for m in part.modules() if isinstance(m, ConvNormAct)]
        for layer in spatial:  # OpenSTL's BasicConv2d._init_weights (not the decoder's 1×1 readout)
            for m in layer.conv.modules():
                if isinstance(m, nn.Conv2d) and not m.weight.is_meta:
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks (MLP-Mixer's
        translator also needs the config's height and width exactly)."""
        if self.config.model_type == "mlp" and x.dim() == 5 and tuple(x.shape[-2:]) != (self.height, self.width):
            problems = check_frames(get_architecture(self), self.config, tuple(x.shape))
            problems.append(
                f"this SimVP-MLP-Mixer runs at {self.height}×{self.width} only (its token MLPs hold one weight "
                f"per position of the {self.height // self.downsample}×{self.width // self.downsample} translator "
                f"map), got {x.shape[-2]}×{x.shape[-1]}; resize the frames, or adapt the model to the new size "
                "(stzoo.training.adapt.adapt(p, height=..., width=...), which re-initialises those weights)"
            )
            raise InputError("; ".join(problems))
        raise_if_bad_frames(self, x)


# --------------------------------------------------------------------------------------------
# What generic code reads
# --------------------------------------------------------------------------------------------
def _frames_params(cfg: SimVPConfig) -> list[str]:
    """Weights whose shape depends on T (they read or write the T·hid_S stacked channels)."""
    if cfg.model_type == "incepu":
        return ["translator.enc.0.conv1.", f"translator.dec.{cfg.N_T - 1}.branches."]
    return ["translator.blocks.0.", f"translator.blocks.{cfg.N_T - 1}.reduction."]


def _resolution_params(cfg: SimVPConfig) -> list[str]:
    """Weights whose shape depends on height / width: MLP-Mixer's token MLPs, Swin's bias tables (whose
    window follows the height)."""
    if cfg.model_type == "mlp":
        return [f"translator.blocks.{i}.block.mlp_tokens." for i in range(cfg.N_T)]
    if cfg.model_type == "swin":
        return [f"translator.blocks.{i}.block.attn.relative_position_bias_table" for i in range(cfg.N_T)]
    return []


def _size_multiple(cfg: SimVPConfig) -> int:
    down = 2 ** (cfg.N_S // 2)
    return down * swin_window(*cfg.resolution())[0] if cfg.model_type == "swin" else down


def _size_reason(cfg: SimVPConfig) -> str:
    down = 2 ** (cfg.N_S // 2)
    if cfg.model_type == "swin":
        w = swin_window(*cfg.resolution())[0]
        return f"SimVP-Swin with N_S={cfg.N_S} downsamples by {down} and attends in {w}×{w} windows"
    return f"SimVP with N_S={cfg.N_S} downsamples by {down}"


ARCHITECTURE = register(
    Architecture(
        name="simvp",
        model=SimVP,
        config=SimVPConfig,
        # OpenSTL's SimVP recipe on Moving MNIST: MSE, Adam(W) lr 1e-3 with a one-cycle schedule, batch 16,
        # 200 epochs, no gradient clipping (its parser's clip_grad=None)
        recipe=Recipe(lr=1e-3, batch_size=16, epochs=200, loss="mse", grad_clip=0.0),
        any_frames=False,
        spec_keys={
            "frames_in": "frames",
            "frames_out": "frames",
            "channels": "channels",
            "height": "height",
            "width": "width",
        },
        size_multiple=_size_multiple,
        size_reason=_size_reason,
        channel_params=lambda cfg: {
            "encoder.layers.0.conv.weight": ChannelParam(1, "in"),
            "decoder.readout.weight": ChannelParam(0, "out"),
            "decoder.readout.bias": ChannelParam(0, "out"),
        },
        frames_params=_frames_params,
        # peak memory estimate: measured ~6.8·hid_S per pixel-frame
        activation_floats=lambda cfg, b, t, h, w: 16.0 * cfg.hid_S * b * t * h * w,
        resolution_params=_resolution_params,
        tiny_config={
            "model_type": "gsta",
            "frames": 4,
            "height": 16,
            "width": 16,
            "hid_S": 4,
            "hid_T": 8,
            "N_S": 2,
            "N_T": 2,
            "mlp_ratio": 2.0,
        },
        description="SimVP (Gao et al., CVPR 2022; IncepU translator), SimVP-gSTA (Tan et al., 2022) and the "
        "MetaVP translators of OpenSTL (ViT, Swin, MLP-Mixer, ConvMixer, UniFormer, PoolFormer, ConvNeXt, VAN, "
        "HorNet, MogaNet): CNN encoder, translator over the stacked frames, CNN decoder",
    )
)
