"""MMVP: Motion-Matrix-based Video Prediction (Zhong et al., ICCV 2023).

MMVP separates *appearance* from *motion*. Motion between two frames is a **motion matrix**: the
cosine similarities between every position of one frame's feature map and every position of the
next one's. Future motion is predicted in matrix space, and future frames are *composed* from the
observed frames' features with those matrices, then decoded and refined:

1. **image encoder** (per frame): ``PixelUnshuffle(2)`` (B·T)×4C×H/2×W/2 → 3×3 stem conv → RRDBs →
   three stride-2 residual stages: f₁ 2h×H/4, f₂ 4h×H/8, f₃ 8h×H/16 (h = ``hid_S``);
2. **filters**: three conv-BN-LeakyReLU layers on f₂ (→ h channels) and on f₃ (→ 2h), whose outputs
   give the motion matrices of consecutive observed frames at two scales (n = h'·w' positions)::

       S_τ[p, q] = ⟨ĝ_τ(p), ĝ_{τ+1}(q)⟩,   ĝ = g / (‖g‖₂ + 10⁻⁶) over channels,   τ = 1 … T−1

3. **matrix predictor**: each row S_τ[p, ·] of the high-scale matrices is a h'×w' map; a CNN with
   3-D (time) convolutions over the T−1 observed rows and a 1×1 "translate" conv from (T−1)·t to
   F·t channels (t = ``hid_T``, F = ``frames_out``) predicts the rows of F future matrices Ŝ_k, each
   mapping the *last observed* frame to future frame k. They are resized to the low scale (bilinear
   over the target positions, bicubic over the source positions). Every matrix, observed or
   predicted, is then normalised by a softmax over all its n² entries: A = softmax(vec S);
4. **composition**: the motion from observed frame τ to future frame k is the chained product
   ``W_{τ,k} = A_τ A_{τ+1} ⋯ A_{T−1} Â_k`` (``W_{T,k} = Â_k``), and the future feature at position q is
   the weighted mean over all observed frames and positions::

       f̂_k(q) = Σ_τ Σ_p W_{τ,k}[p, q] f_τ(p)  /  (Σ_τ Σ_p W_{τ,k}[p, q] + 10⁻⁶)

   applied to f₁ (pixel-unshuffled by 2 to the high-scale grid), f₂ (high-scale matrices), f₃
   (low-scale matrices) and to the input frames themselves (pixel-unshuffled to the high-scale grid:
   8×8-pixel tokens);
5. **image decoder**: a U-Net decoder (transposed-conv up, skip concatenation, 3×3 conv + ReLU) from
   f̂₃ with the skips f̂₂, f̂₁ → RRDBs → 1×1 conv to 4C → ``PixelShuffle(2)``: the decoded frame;
6. **enhancer**: 3×3 conv over [decoded frame ; composed frame] (interleaved per colour channel), RRDBs,
   1×1 conv to C: the predicted frame.

One call maps ``frames_in`` frames to ``frames_out`` frames (the translate conv's width fixes both);
longer horizons are rolled out by feeding predictions back in. Height and width must be multiples of
16; any such size runs (the matrix sizes follow the input). This module does no I/O.

**What this is exactly.** The layout and the function are OpenSTL's ``MMVP_Model`` with its Moving MNIST
settings (``configs/mmnist/MMVP.py``: ``downsample_setting='2,2,2'``, ``hid_S=32``, ``hid_T=192``, two
RRDBs in encoder, decoder and enhancer, ``use_direct_predictor=True``), so OpenSTL checkpoints convert
exactly (``stzoo.convert.openstl.mmvp``). Differences, each deliberate:

* **parameters.** OpenSTL builds three modules its forward never calls: ``MidMotionMatrix.scale_fuser_1``
  (26,656 parameters), ``scale_fuser_2`` (18,624) and ``PredictModel.fuse_conv`` (663,552, used only with a
  residual input that is never passed). With the Moving MNIST config OpenSTL has 14,828,581 parameters;
  stzoo leaves those 708,832 out and has **14,119,749**, the defaults here.
* **input.** OpenSTL's training step feeds all 20 frames (input and target) to a model built for 10; its
  forward uses only the first 10 (matrices, features and pixels are sliced to ``T``), so the only
  effect of the 10 future frames is on the filters' BatchNorm statistics in training mode (the batch
  statistics, and so the running averages used at test time).
  stzoo's forward reads exactly ``frames_in`` frames, in training too.
* **other sizes.** OpenSTL fixes the matrix sizes from its config's ``in_shape`` and interpolates
  features to them; stzoo's matrix sizes follow the input, so a model runs at any multiple of 16 (at
  the training size the two are the same). Only ``downsample_setting='2,2,2'`` and the direct predictor
  (OpenSTL's default) are built.
* **several channels.** OpenSTL returns ``out.permute(0, 2, 3, 1).reshape(B, −1, C, H, W)``, which for
  C > 1 reinterprets the H×W×C array as C×H×W (scrambling pixels across channels); stzoo returns the
  frames as computed. For C = 1 the two are the same. The enhancer's first conv reads
  [decoded, composed] interleaved per colour (c₀ decoded, c₀ composed, c₁ …) instead of OpenSTL's
  [all decoded ; all composed], so that channel adaptation (grey → RGB) works per colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.errors import ConfigError
from stzoo.models.base import Architecture, ChannelParam, ModelConfig, Recipe, cfg_field, raise_if_bad_frames, register

__all__ = [
    "MMVP",
    "MMVPConfig",
    "MMVP_RECIPE",
    "ARCHITECTURE",
    "similarity_matrices",
    "softmax_matrices",
    "resize_matrices",
    "chain_matrices",
    "compose",
]

#: the downsampling of the deepest features (PixelUnshuffle 2, then three stride-2 stages)
MMVP_DOWNSAMPLE = 16


@dataclass
class MMVPConfig(ModelConfig):
    """MMVP's settings. Defaults: OpenSTL's ``configs/mmnist/MMVP.py`` (14,119,749 parameters here;
    OpenSTL's 14,828,581 less the 708,832 of three modules its forward never calls)."""

    frames_in: int = cfg_field(10, lo=2, hi=1000)  # T: frames read per call (>= 2: one motion matrix)
    frames_out: int = cfg_field(10, lo=1, hi=1000)  # F: frames predicted per call
    channels: int = cfg_field(1, lo=1, hi=64)  # colour channels of a frame
    height: int = cfg_field(64, lo=16, hi=8192)  # training size (any multiple of 16 runs)
    width: int = cfg_field(64, lo=16, hi=8192)  # (training width)
    hid_S: int = cfg_field(32, lo=2, hi=1024)  # h: encoder width (stages h, 2h, 4h, 8h)
    hid_T: int = cfg_field(192, lo=1, hi=4096)  # t: channels of the matrix predictor
    rrdb_encoder_num: int = cfg_field(2, lo=0, hi=32)  # RRDBs after the encoder's stem conv
    rrdb_decoder_num: int = cfg_field(2, lo=0, hi=32)  # RRDBs before the decoder's readout
    rrdb_enhance_num: int = cfg_field(2, lo=0, hi=32)  # RRDBs in the enhancer

    def validate(self) -> None:
        super().validate()
        for key in ("height", "width"):
            if getattr(self, key) % MMVP_DOWNSAMPLE:
                raise ConfigError(
                    f"MMVP's {key} must be a multiple of {MMVP_DOWNSAMPLE} (it downsamples by "
                    f"{MMVP_DOWNSAMPLE}), got {getattr(self, key)}"
                )


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
class DenseBlock(nn.Module):
    """Residual dense block: four 3×3 convs, each reading everything before it; x + 0.2 · conv4(...)."""

    def __init__(self, nf: int):
        super().__init__()
        gc = nf // 2
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, nf, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        return self.conv4(torch.cat((x, x1, x2, x3), 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: x + 0.2 · RDB₃(RDB₂(RDB₁(x)))."""

    def __init__(self, nf: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf), DenseBlock(nf), DenseBlock(nf)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class DownBlock(nn.Module):
    """Stride-2 residual stage: LReLU(ReLU(conv₂(ReLU(conv₁(x)))) + skip(x)), half the size."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 2, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1, 2)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(F.relu(self.conv2(F.relu(self.conv1(x)))) + self.skip(x))


class UpBlock(nn.Module):
    """×2 transposed conv, [skip ;] concatenation, 3×3 conv without bias, ReLU."""

    def __init__(self, c_in: int, c_out: int, skip: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, 2)
        self.conv = nn.Conv2d(2 * c_out if skip else c_out, c_out, 3, 1, 1, bias=False)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([skip, x], dim=1)
        return F.relu(self.conv(x))


class FilterBlock(nn.Module):
    """Three 3×3 conv → BatchNorm → LeakyReLU layers: the features the motion matrices compare."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out)
        self.conv3, self.bn3 = nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.bn1(self.conv1(x)))
        x = F.leaky_relu(self.bn2(self.conv2(x)))
        return F.leaky_relu(self.bn3(self.conv3(x)))


class TimeConv(nn.Module):
    """3×3×3 conv over (time, height, width) → BatchNorm3d → LeakyReLU on B×T×C×h×w."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv3d(c, c, 3, 1, 1)
        self.bn = nn.BatchNorm3d(c)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.bn(self.conv(x.transpose(1, 2)))).transpose(1, 2)


class ImageEncoder(nn.Module):
    """(B·T)×4C×H/2×W/2 → (f₁ 2h×H/4, f₂ 4h×H/8, f₃ 8h×H/16)."""

    def __init__(self, c_in: int, h: int, n_rrdb: int):
        super().__init__()
        self.stem = nn.Conv2d(c_in, h, 3, 1, 1)
        self.rrdb = nn.Sequential(*[RRDB(h) for _ in range(n_rrdb)])
        self.down1 = DownBlock(h, 2 * h)
        self.down_high = DownBlock(2 * h, 4 * h)
        self.down_low = DownBlock(4 * h, 8 * h)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f1 = self.down1(self.rrdb(self.stem(x)))
        f2 = self.down_high(f1)
        return f1, f2, self.down_low(f2)


class ImageDecoder(nn.Module):
    """(f̂₃, f̂₂, f̂₁) → (B·F)×4C×H/2×W/2."""

    def __init__(self, h: int, c_out: int, n_rrdb: int):
        super().__init__()
        self.up_low = UpBlock(8 * h, 4 * h, skip=True)
        self.up_mid = UpBlock(4 * h, 2 * h, skip=True)
        self.up_top = UpBlock(2 * h, h, skip=False)
        self.rrdb = nn.Sequential(*[RRDB(h) for _ in range(n_rrdb)])
        self.readout = nn.Conv2d(h, c_out, 1)

    def forward(self, f3: Tensor, f2: Tensor, f1: Tensor) -> Tensor:
        return self.readout(self.rrdb(self.up_top(self.up_mid(self.up_low(f3, f2), f1))))


class MatrixPredictor(nn.Module):
    """Rows of the T−1 observed high-scale matrices → rows of F predicted ones (logits).

    Shapes (n = h'·w' positions, b = B·n rows): B×(T−1)×n×n → embed: (b·(T−1))×t×h'×w' → two 3×3
    convs → stride 2 → time conv over T−1 → translate (T−1)·t → F·t → stride 2 (2t) → time conv over
    F (a 3×3 conv when F = 1) → nearest up, concatenated with the level above → 3×3 → nearest up →
    3×3 → readout: B×F×n×n."""

    def __init__(self, frames_in: int, frames_out: int, t: int):
        super().__init__()
        self.frames_out = frames_out
        self.embed = nn.Conv2d(1, t, 3, 1, 1, bias=False)
        self.pre1, self.bn_pre1 = nn.Conv2d(t, t, 3, 1, 1), nn.BatchNorm2d(t)
        self.pre2, self.bn_pre2 = nn.Conv2d(t, t, 3, 1, 1), nn.BatchNorm2d(t)
        self.down1, self.bn_down1 = nn.Conv2d(t, t, 3, 2, 1), nn.BatchNorm2d(t)
        self.time1 = TimeConv(t)
        self.translate = nn.Conv2d(t * (frames_in - 1), t * frames_out, 1)
        self.bn_translate = nn.BatchNorm2d(t * frames_out)
        self.down2, self.bn_down2 = nn.Conv2d(t, 2 * t, 3, 2, 1), nn.BatchNorm2d(2 * t)
        self.time2 = TimeConv(2 * t) if frames_out > 1 else nn.Conv2d(2 * t, 2 * t, 3, 1, 1)
        self.fuse, self.bn_fuse = nn.Conv2d(3 * t, t, 3, 1, 1), nn.BatchNorm2d(t)
        self.up, self.bn_up = nn.Conv2d(t, t, 3, 1, 1), nn.BatchNorm2d(t)
        self.readout = nn.Conv2d(t, 1, 3, 1, 1, bias=False)

    def forward(self, s: Tensor, grid: tuple[int, int]) -> Tensor:
        b, t_obs, n, _ = s.shape
        fo = self.frames_out
        x = self.embed(s.reshape(b * t_obs * n, 1, *grid))  # (B·(T−1)·n)×t×h'×w'
        x = x.reshape(b, t_obs, n, -1, *grid).transpose(1, 2).reshape(b * n * t_obs, -1, *grid)
        x = F.leaky_relu(self.bn_pre1(self.pre1(x)))
        x = F.leaky_relu(self.bn_pre2(self.pre2(x)))
        x1 = F.leaky_relu(self.bn_down1(self.down1(x)))  # ⌈h'/2⌉
        c, hh, ww = x1.shape[1:]
        x1 = self.time1(x1.reshape(b * n, t_obs, c, hh, ww))  # (B·n)×(T−1)×t×…
        x1 = self.bn_translate(F.leaky_relu(self.translate(x1.reshape(b * n, t_obs * c, hh, ww))))
        x1 = x1.reshape(b * n * fo, c, hh, ww)  # (B·n·F)×t×…
        x2 = F.leaky_relu(self.bn_down2(self.down2(x1)))  # ⌈h'/4⌉
        if fo > 1:
            x2 = self.time2(x2.reshape(b * n, fo, *x2.shape[1:])).reshape(b * n * fo, *x2.shape[1:])
        else:
            x2 = F.leaky_relu(self.time2(x2))
        x3 = F.leaky_relu(self.bn_fuse(self.fuse(torch.cat((F.interpolate(x2, size=(hh, ww)), x1), dim=1))))
        x = F.leaky_relu(self.bn_up(self.up(F.interpolate(x3, size=grid))))  # (B·n·F)×t×h'×w'
        out = self.readout(x)  # (B·n·F)×1×h'×w'
        return out.reshape(b, n, fo, n).transpose(1, 2)  # B×F×n×n


class ImageEnhancer(nn.Module):
    """[decoded ; composed] per colour (2C channels) → C channels."""

    def __init__(self, channels: int, h: int, n_rrdb: int):
        super().__init__()
        self.stem = nn.Conv2d(2 * channels, h, 3, 1, 1)
        self.rrdb = nn.Sequential(*[RRDB(h) for _ in range(n_rrdb)])
        self.readout = nn.Conv2d(h, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.rrdb(self.stem(x)))


# --------------------------------------------------------------------------------------------
# Motion matrices
# --------------------------------------------------------------------------------------------
def similarity_matrices(g: Tensor) -> Tensor:
    """Cosine similarities of consecutive frames: B×T×c×h×w → B×(T−1)×n×n (row: position in frame τ,
    column: position in frame τ+1)."""
    b, t, c, h, w = g.shape
    g = g.permute(0, 1, 3, 4, 2)
    g = g / (torch.norm(g, dim=-1, keepdim=True) + 1e-6)
    prev, nxt = g[:, :-1].reshape(-1, h * w, c), g[:, 1:].reshape(-1, h * w, c)
    return torch.bmm(prev, nxt.transpose(1, 2)).reshape(b, t - 1, h * w, h * w)


def softmax_matrices(s: Tensor) -> Tensor:
    """Each n×n matrix of B×K×n×n normalised by a softmax over all its n² entries."""
    return torch.softmax(s.flatten(2), dim=-1).reshape(s.shape)


def resize_matrices(s: Tensor, src: tuple[int, int], dst: tuple[int, int]) -> Tensor:
    """B×K×(h·w)×(h·w) matrices on an h×w grid → on an h₂×w₂ grid: the target axes resized bilinearly,
    then the source axes bicubically (OpenSTL's ``sim_matrix_interpolate``)."""
    b, k = s.shape[:2]
    (h, w), (h2, w2) = src, dst
    x = F.interpolate(s.reshape(b * k * h * w, 1, h, w), (h2, w2), mode="bilinear")  # targets resized
    x = x.reshape(b, k, h, w, h2, w2).permute(0, 1, 4, 5, 2, 3).reshape(b * k * h2 * w2, 1, h, w)
    x = F.interpolate(x, (h2, w2), mode="bicubic")  # sources resized
    return x.reshape(b, k, h2, w2, h2, w2).permute(0, 1, 4, 5, 2, 3).reshape(b, k, h2 * w2, h2 * w2)


def chain_matrices(observed: Tensor, future: Tensor) -> Tensor:
    """The motion from each observed frame to each future frame: for observed A_1 … A_{T−1}
    (B×(T−1)×n×n) and future Â_1 … Â_F (B×F×n×n), W[:, k, τ] = A_τ ⋯ A_{T−1} Â_k and W[:, k, T] = Â_k
    (products taken right to left, as OpenSTL's ``cum_multiply``): B×F×T×n×n."""
    links = [future]  # B×F×n×n
    for i in range(observed.shape[1] - 1, -1, -1):
        links.append(observed[:, i, None] @ links[-1])
    return torch.stack(links[::-1], dim=2)


def compose(feats: Tensor, weights: Tensor) -> Tensor:
    """Future features from the T observed ones: feats B×T×c×h×w, weights B×F×T×n×n (n = h·w) →
    (B·F)×c×h×w, each position the weighted mean over every observed frame and position."""
    b, t, c, h, w = feats.shape
    fo = weights.shape[1]
    src = feats.permute(0, 1, 3, 4, 2).reshape(b, 1, t * h * w, c)  # B×1×(T·n)×c
    wt = weights.reshape(b, fo, t * h * w, h * w).transpose(2, 3)  # B×F×n×(T·n)
    norm = wt.sum(dim=-1, keepdim=True) + 1e-6
    out = (wt @ src) / norm  # B×F×n×c
    return out.transpose(2, 3).reshape(b * fo, c, h, w)


# --------------------------------------------------------------------------------------------
# The whole net
# --------------------------------------------------------------------------------------------
class MMVP(nn.Module):
    """MMVP: B×frames_in×C×H×W → B×frames_out×C×H×W (H, W multiples of 16)."""

    arch = "mmvp"
    recurrent = False

    def __init__(self, config: MMVPConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = self.config = MMVPConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.frames_in, self.frames_out, self.channels = cfg.frames_in, cfg.frames_out, cfg.channels
        self.height, self.width = cfg.height, cfg.width
        h, c = cfg.hid_S, cfg.channels
        self.encoder = ImageEncoder(4 * c, h, cfg.rrdb_encoder_num)
        self.filter_high = FilterBlock(4 * h, h)  # on f₂ (H/8): the high-scale matrices
        self.filter_low = FilterBlock(8 * h, 2 * h)  # on f₃ (H/16): the low-scale matrices
        self.predictor = MatrixPredictor(cfg.frames_in, cfg.frames_out, cfg.hid_T)
        self.decoder = ImageDecoder(h, 4 * c, cfg.rrdb_decoder_num)
        self.enhancer = ImageEnhancer(c, h, cfg.rrdb_enhance_num)

    def check_input(self, x: Tensor) -> None:
        """Raise one clear error listing every rule of the input contract ``x`` breaks."""
        raise_if_bad_frames(self, x)

    def matrices(self, f2: Tensor, f3: Tensor, b: int) -> tuple[Tensor, Tensor]:
        """The normalised motion matrices [observed ; predicted] at the high and the low scale,
        B×(T−1+F)×n×n each (n = positions of that scale), from the encoder features f₂, f₃."""
        g_hi, g_lo = self.filter_high(f2), self.filter_low(f3)
        t = self.frames_in
        obs_hi = similarity_matrices(g_hi.reshape(b, t, *g_hi.shape[1:]))  # B×(T−1)×n×n, cosines
        obs_lo = similarity_matrices(g_lo.reshape(b, t, *g_lo.shape[1:]))
        grid_hi, grid_lo = tuple(g_hi.shape[-2:]), tuple(g_lo.shape[-2:])
        fut_hi = self.predictor(obs_hi, grid_hi)  # B×F×n×n, logits
        fut_lo = resize_matrices(fut_hi, grid_hi, grid_lo)
        return (
            torch.cat([softmax_matrices(obs_hi), softmax_matrices(fut_hi)], dim=1),
            torch.cat([softmax_matrices(obs_lo), softmax_matrices(fut_lo)], dim=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        b, t, c, hh, ww = x.shape
        fo = self.frames_out
        z = F.pixel_unshuffle(x.reshape(b * t, c, hh, ww), 2)  # (B·T)×4C×H/2×W/2
        f1, f2, f3 = self.encoder(z)
        m_hi, m_lo = self.matrices(f2, f3, b)
        w_hi = chain_matrices(m_hi[:, : t - 1], m_hi[:, t - 1 :])  # B×F×T×n×n
        w_lo = chain_matrices(m_lo[:, : t - 1], m_lo[:, t - 1 :])

        def seq(f: Tensor) -> Tensor:
            return f.reshape(b, t, *f.shape[1:])

        c1 = F.pixel_shuffle(compose(seq(F.pixel_unshuffle(f1, 2)), w_hi), 2)  # (B·F)×2h×H/4
        c2 = compose(seq(f2), w_hi)  # (B·F)×4h×H/8
        c3 = compose(seq(f3), w_lo)  # (B·F)×8h×H/16
        decoded = F.pixel_shuffle(self.decoder(c3, c2, c1), 2)  # (B·F)×C×H×W
        pixels = compose(seq(F.pixel_unshuffle(z, 4)), w_hi)  # (B·F)×64C×H/8×W/8
        composed = F.pixel_shuffle(F.pixel_shuffle(pixels, 4), 2)  # (B·F)×C×H×W
        both = torch.stack([decoded, composed], dim=2).reshape(b * fo, 2 * c, hh, ww)  # per colour
        return self.enhancer(both).reshape(b, fo, c, hh, ww)


def _frames_params(cfg: MMVPConfig) -> list[str]:
    # the translate conv reads (T−1)·hid_T and writes F·hid_T channels; the second time conv is 3-D for F > 1
    return ["predictor.translate.", "predictor.bn_translate.", "predictor.time2."]


#: OpenSTL's MMVP recipe on Moving MNIST (configs/mmnist/MMVP.py, openstl/methods/mmvp.py): MSE on the
#: predicted frames, Adam at lr 1e-3 with a OneCycle schedule, batch 16, 200 epochs, no gradient clipping
#: (its parser's clip_grad=None), no weight decay.
MMVP_RECIPE = Recipe(lr=1e-3, batch_size=16, epochs=200, loss="mse", grad_clip=0.0)

ARCHITECTURE = register(
    Architecture(
        name="mmvp",
        model=MMVP,
        config=MMVPConfig,
        recipe=MMVP_RECIPE,
        any_frames=False,
        spec_keys={k: k for k in ("frames_in", "frames_out", "channels", "height", "width")},
        size_multiple=lambda cfg: MMVP_DOWNSAMPLE,
        size_reason=lambda cfg: (
            f"MMVP downsamples by {MMVP_DOWNSAMPLE} (pixel unshuffle by 2, then three stride-2 stages)"
        ),
        channel_params=lambda cfg: {
            "encoder.stem.weight": ChannelParam(1, "in", 4),
            "decoder.readout.weight": ChannelParam(0, "out", 4),
            "decoder.readout.bias": ChannelParam(0, "out", 4),
            "enhancer.stem.weight": ChannelParam(1, "in", 2),
            "enhancer.readout.weight": ChannelParam(0, "out"),
            "enhancer.readout.bias": ChannelParam(0, "out"),
        },
        frames_params=_frames_params,
        # peak memory estimate: measured ~12·hid_S per pixel-frame
        activation_floats=lambda cfg, b, t, h, w: 32.0 * cfg.hid_S * b * t * h * w,
        tiny_config={
            "frames_in": 4,
            "frames_out": 4,
            "height": 32,
            "width": 32,
            "hid_S": 8,
            "hid_T": 8,
            "rrdb_encoder_num": 1,
            "rrdb_decoder_num": 1,
            "rrdb_enhance_num": 1,
        },
        description="MMVP (Zhong et al., ICCV 2023): motion matrices of feature similarities, predicted in matrix "
        "space, compose future features and pixels that a U-Net decoder and an enhancer turn into frames",
    )
)
