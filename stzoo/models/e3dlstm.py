"""E3D-LSTM, Eidetic 3D LSTM (Wang et al., ICLR 2019): 3-D convolutions over a short window of frames
and an eidetic cell memory that recalls its own past through self-attention.

Each step, the bottom layer reads the last ``window_length`` frames (patch-reshaped, stacked along a
depth axis: B×P×w×h×w with w = ``window_length``, the oldest first, zeros before the first frame);
every layer's states H and C are B×N×w×h×w. ``*`` is a 3-D convolution with a 2×k×k kernel and no
padding in depth (so a depth-w input gives depth w−1), followed by a nearest resize of the depth axis
back to w (OpenSTL's ``tf_Conv3d``; with w = 2 the single depth slice is repeated). With ``stride`` s > 1
(OpenSTL's KTH config has 2) the W_x, W_h, W_oc, W_om convolutions stride by s on all three axes and the nearest
resize restores depth, height and width alike. For layer l, with X
its input (the window for l = 1, H^{l−1}_t above), H = H^l_{t−1}, C = C^l_{t−1}::

    [i_x, g_x, r_x, o_x, i'_x, g'_x] = W_x * X          [i_h, g_h, r_h, o_h] = W_h * H
    i = σ(i_x + i_h)     r = σ(r_x + r_h)     g = tanh(g_x + g_h)
    C_t = LN(C + Recall(r, C_{≤t−1})) + i ∘ g                         (the eidetic memory)
    M_t = σ(i'_x) ∘ tanh(g'_x)                                         (the "global memory", see below)
    o   = tanh(o_x + o_h + W_oc * C_t + W_om * M_t)
    H_t = tanh(W_1×1×1 [C_t ; M_t]) ∘ σ(o)

``Recall(r, C_{≤t−1}) = softmax(Q Kᵀ) K`` is unscaled dot-product attention whose keys and values are
the layer's whole cell history ``C_{≤t−1} = [0, C_0, …, C_{t−1}]`` (concatenated along channels, the
first entry the zero initial cell) and whose queries are r. LN is a LayerNorm over N×w×h×w with
per-position affine weights. The next frame is read out by a w×1×1 convolution (stride w) of the top
H_t, then un-patched.

**What this is exactly.** The layout and the function are OpenSTL's ``E3DLSTM_Model``
(``openstl/models/e3dlstm_model.py``, ``openstl/modules/e3dlstm_modules.py``; Apache-2.0), so
OpenSTL checkpoints convert exactly (``stzoo.convert.openstl.e3dlstm``). Decisions, quirk by quirk:

* **the global memory never moves.** In OpenSTL — and in the authors' TensorFlow code
  (google/e3d_lstm, ``rnn_cell.py``), which it ports — the cell returns the ``global_memory`` it was
  given instead of the one it computed, so the memory every cell reads is the initial zero tensor at
  every step and layer. Its convolution ``conv_gm`` (no bias in OpenSTL) therefore always outputs 0:
  ``i_m = f_m = g_m = m_m = 0``, and ``M_t = σ(f'_x + 1) ∘ tanh(0) + σ(i'_x) ∘ tanh(g'_x)`` loses its
  forget term. stzoo computes exactly that function, without the dead weights: ``conv_gm`` and the
  forget-gate rows of ``conv_x`` (its 7th chunk, ``temp_f_x``) are left out. M_t is then a fresh
  per-step feature of the input, not a memory carried up the layers and on to the next step as the
  paper describes (PredRNN's zigzag); that version cannot be had from OpenSTL's weights, so it is
  not offered.
* **attention tokens.** OpenSTL reshapes the channels-first B×N×w×h×w tensors as ``reshape(B, −1, N)``
  without moving the channel axis last, so a "token" is N consecutive values of the flattened
  (channel, depth, row, column) array, not the N-channel vector of one position (the authors' code is
  channels-last, where it is). stzoo keeps OpenSTL's reading: that is what OpenSTL's weights were
  trained with.
* **no biases, LayerNorm over the cell only** (OpenSTL's ``layer_norm=0``, its Moving MNIST setting),
  output gate ``σ(tanh(·))`` as in both codes. (The authors' convolutions have biases, so there
  ``conv_gm`` of the zero memory is its bias, a learned constant, and the forget term survives as
  ``σ(f'_x + b_f + 1) ∘ tanh(b_m)``; their 3-D convs pad the depth ("same") where OpenSTL convolves
  without depth padding and repeats the result. Neither can be reproduced from OpenSTL weights.)
* **OpenSTL cannot build it at HEAD**: ``openstl/methods/e3dlstm.py`` reads ``self.args.num_hidden``,
  an attribute its Lightning ``Base_method`` no longer has (it keeps ``self.hparams``). That concerns
  only OpenSTL's training entry point; the model class is unchanged, and checkpoints of earlier
  versions convert.

Parameter count. OpenSTL's Moving MNIST config (``configs/mmnist/E3DLSTM.py``: 4 × 128 hidden,
2×5×5 kernels, window 2, patch 4, 64×64 frames) has 51,347,456 parameters, of which 13,107,200 are the
four ``conv_gm`` (4 × 3,276,800) and 2,560,000 the forget rows of the ``conv_x`` (102,400 for the first
layer, 819,200 for each other); stzoo's model has the remaining **35,680,256**, the defaults here.

The per-position LayerNorm weights tie a model to the frame size it was built for (``height`` ×
``width`` of its config), as MIM's peepholes do; :meth:`E3DLSTM.check_input` says so. The cell
history grows by one entry per step, so memory and attention cost grow with the sequence length
(O(T²) for a T-step rollout), as in OpenSTL. This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stzoo.errors import ConfigError, InputError
from stzoo.models.base import Architecture, Recipe, cfg_field, check_frames, get_architecture, register
from stzoo.models.recurrent import (
    RecurrentConfig,
    RecurrentNet,
    recurrent_declaration,
    recurrent_tiny_config,
    rollout_activation_floats,
)

__all__ = [
    "E3DLSTM",
    "E3DLSTMConfig",
    "EideticCell",
    "E3DLSTM_RECIPE",
    "e3dlstm_training_forward",
    "TEMPORAL_KERNEL",
    "ARCHITECTURE",
]

#: depth of every 3-D kernel (OpenSTL's and the authors' ``(2, 5, 5)``; fixed there)
TEMPORAL_KERNEL = 2


@dataclass
class E3DLSTMConfig(RecurrentConfig):
    """E3D-LSTM's settings. Defaults: OpenSTL's ``configs/mmnist/E3DLSTM.py`` (35,680,256 parameters here;
    OpenSTL's 51,347,456 less its dead ``conv_gm`` and forget rows, see the module docstring)."""

    height: int = cfg_field(64, lo=1, hi=8192)  # the frame height it runs at (per-position LayerNorm)
    width: int = cfg_field(64, lo=1, hi=8192)  # the frame width it runs at
    num_hidden: int = cfg_field(128, lo=1, hi=2048)  # hidden channels N of every layer
    window_length: int = cfg_field(2, lo=2, hi=16)  # frames the 3-D convs see per step (OpenSTL: 2, fixed)
    stride: int = cfg_field(1, lo=1, hi=4)  # 3-D gate conv stride, outputs resized back (OpenSTL's KTH config: 2)

    def validate(self) -> None:
        super().validate()
        for key in ("height", "width"):
            if getattr(self, key) % self.patch_size:
                raise ConfigError(
                    f"E3D-LSTM's {key} must be a multiple of patch_size={self.patch_size} (its "
                    f"LayerNorm has one weight per patch), got {getattr(self, key)}"
                )


def _depth_indices(d_in: int, d_out: int) -> list[int]:
    """Which input depth slice each output slice copies in a nearest resize d_in → d_out (PyTorch's
    ``F.interpolate(mode="nearest")`` rule: ⌊i · d_in / d_out⌋), as OpenSTL's ``tf_Conv3d`` resizes its
    convolutions' output depth back to the input's."""
    return [min((i * d_in) // d_out, d_in - 1) for i in range(d_out)]


class EideticCell(nn.Module):
    """One E3D-LSTM layer (equations in the module docstring). (X, H, C, history) → (H', C')."""

    def __init__(self, c_in: int, c_hid: int, filter_size: int, window: int, grid: tuple[int, int], stride: int = 1):
        super().__init__()
        n, k = c_hid, filter_size
        self.c_hid = n
        # stride s on every axis (OpenSTL passes one int to its Conv3d); the outputs are resized back (nearest)
        kw = {"padding": (0, k // 2, k // 2), "stride": stride, "bias": False}
        self.conv_x = nn.Conv3d(c_in, 6 * n, (TEMPORAL_KERNEL, k, k), **kw)  # i, g, r, o, i', g' from the input
        self.conv_h = nn.Conv3d(n, 4 * n, (TEMPORAL_KERNEL, k, k), **kw)  # i, g, r, o from H_{t−1}
        self.conv_oc = nn.Conv3d(n, n, (TEMPORAL_KERNEL, k, k), **kw)  # C_t → o
        self.conv_om = nn.Conv3d(n, n, (TEMPORAL_KERNEL, k, k), **kw)  # M_t → o
        self.conv_last = nn.Conv3d(2 * n, n, 1, bias=False)  # [C_t ; M_t] → H_t
        self.norm_c = nn.LayerNorm([n, window, *grid])  # over N×w×h×w, per-position affine

    @staticmethod
    def _restore(y: Tensor, like: Tensor) -> Tensor:
        """Nearest resize of a conv output back to the depth × height × width of ``like`` (w − 1 → w, and the
        grid a stride shrank; OpenSTL's ``tf_Conv3d``). Element-wise gate arithmetic commutes with it."""
        depth = like.shape[2]
        if tuple(y.shape[3:]) != tuple(like.shape[3:]):
            return F.interpolate(y, size=tuple(like.shape[2:]), mode="nearest")
        d = y.shape[2]
        if d == depth:
            return y
        if d == 1:
            return y.expand(-1, -1, depth, -1, -1)
        return y[:, :, _depth_indices(d, depth)]

    @staticmethod
    def recall(r: Tensor, history: Tensor) -> Tensor:
        """softmax(Q Kᵀ) K with Q = r (B×N×w×h×w) and K = V = ``history`` (B×(N·m)×w×h×w), both read as
        tokens of N consecutive values of their flattened arrays (OpenSTL's ``_attn``)."""
        b, n = r.shape[:2]
        q = r.reshape(b, -1, n)  # B×(w·h·w)×N
        kv = history.reshape(b, -1, n)  # B×(m·w·h·w)×N
        attn = torch.softmax(q @ kv.transpose(1, 2), dim=-1)  # B×(w·h·w)×(m·w·h·w)
        return (attn @ kv).reshape(r.shape)

    def forward(self, x: Tensor, h: Tensor, c: Tensor, history: Tensor) -> tuple[Tensor, Tensor]:
        n = self.c_hid
        i_x, g_x, r_x, o_x, i2_x, g2_x = torch.split(self.conv_x(x), n, dim=1)  # each B×N×(w−1)×h×w
        i_h, g_h, r_h, o_h = torch.split(self.conv_h(h), n, dim=1)
        i = torch.sigmoid(i_x + i_h)
        r = self._restore(torch.sigmoid(r_x + r_h), h)  # B×N×w×h×w
        g = torch.tanh(g_x + g_h)
        c = self.norm_c(c + self.recall(r, history)) + self._restore(i * g, h)
        m = self._restore(torch.sigmoid(i2_x) * torch.tanh(g2_x), h)  # the never-updated memory's M_t
        o = torch.tanh(o_x + o_h + self.conv_oc(c) + self.conv_om(m))
        h = torch.tanh(self.conv_last(torch.cat([c, m], dim=1))) * self._restore(torch.sigmoid(o), h)
        return h, c


class E3DLSTM(RecurrentNet):
    """A stack of eidetic 3-D LSTM cells over a sliding window of frames. Any T in, any number out.

    The recurrent state (as :meth:`init_states` returns and :meth:`step` carries it) is
    ``(window, layers)``: ``window`` holds the last ``window_length − 1`` patch-reshaped input frames
    (zeros at the start), ``layers`` one ``(H, C, history)`` per layer, ``history`` the cells recalled so
    far (``None`` before the first step). It lives only inside one forward call (or one stream).
    """

    arch = "e3dlstm"
    config_class = E3DLSTMConfig

    def __init__(self, config: E3DLSTMConfig | None = None, **overrides: Any):
        cfg = E3DLSTMConfig.from_dict({**(config.to_dict() if config else {}), **overrides})
        self.window = cfg.window_length
        self.grid = (cfg.height // cfg.patch_size, cfg.width // cfg.patch_size)
        super().__init__(cfg)
        patch_ch = cfg.channels * cfg.patch_size**2
        # the top H (B×N×w×h×w) → the next frame's patches: a w×1×1 conv with stride w (depth w → 1)
        self.readout = nn.Conv3d(cfg.num_hidden, patch_ch, (self.window, 1, 1), stride=(self.window, 1, 1), bias=False)

    def make_cell(self, c_in: int, c_hid: int, filter_size: int) -> nn.Module:
        return EideticCell(c_in, c_hid, filter_size, self.window, self.grid, self.config.stride)

    def check_input(self, x: Tensor) -> None:
        """The recurrent nets' rules, plus: the frames must have the size this model was built for."""
        problems = check_frames(get_architecture(self), self.config, tuple(x.shape))
        if x.dim() == 5 and tuple(x.shape[-2:]) != (self.height, self.width):
            problems.append(
                f"this E3D-LSTM runs at {self.height}×{self.width} only (its cell LayerNorms hold one "
                f"weight per cell of the {self.grid[0]}×{self.grid[1]} patch grid), got "
                f"{x.shape[-2]}×{x.shape[-1]}; resize the frames, or adapt the model to the new size "
                "(stzoo.training.adapt.adapt(p, height=..., width=...), which re-initialises those weights)"
            )
        if problems:
            raise InputError("; ".join(problems))

    def init_states(self, batch: int, h: int, w: int, like: Tensor) -> tuple[tuple[Tensor, ...], list[Any]]:
        """Zero states for an ``h``×``w`` patch grid: the frame window and (H, C, history) per layer."""
        frame = like.new_zeros(batch, self.channels * self.patch_size**2, h, w)
        z = like.new_zeros(batch, self.num_hidden, self.window, h, w)
        return (frame,) * (self.window - 1), [(z, z, None) for _ in range(self.num_layers)]

    def step(self, frame: Tensor, states: Any) -> tuple[Tensor, Any]:
        """One time step: read ``frame`` (B×C×H×W), return the predicted next frame and the states."""
        window, layers = states
        frames = (*window, self._encode(frame))
        inp = torch.stack(frames, dim=2)  # B×P×w×h×w, the oldest frame first
        new_layers = []
        for cell, (h, c, past) in zip(self.cells, layers):
            history = c if past is None else torch.cat([past, c], dim=1)  # [0, C_0, …, C_{t−1}]
            h, c = cell(inp, h, c, history)
            new_layers.append((h, c, history))
            inp = h
        pred = self.unpatchify(self.readout(inp)[:, :, 0])  # B×C×H×W
        return pred, (frames[1:], new_layers)


def e3dlstm_training_forward(
    model: nn.Module, recipe: Recipe, seq: Tensor, progress: float
) -> tuple[Tensor, Tensor, Tensor]:
    """OpenSTL's E3D-LSTM training step on a B×(T_in+T_out)×C×H×W batch: every one-step prediction
    (frames 1 … T_in+T_out−1) with scheduled sampling — each predicted-part input is the ground truth
    with probability η = max(0, 1 − progress / ``recipe.scheduled_sampling``), else the model's own
    prediction — and its target; the extra term is the L1 loss (OpenSTL's model loss is MSE + L1; the
    training code adds the recipe's MSE). ``model`` may be wrapped (DistributedDataParallel)."""
    t_in, t_out = recipe.frames_in, recipe.frames_out
    x, y = seq[:, :t_in], seq[:, t_in : t_in + t_out]
    mask = None
    if recipe.scheduled_sampling > 0 and t_out > 1:
        eta = max(0.0, 1.0 - progress / recipe.scheduled_sampling)
        mask = torch.bernoulli(torch.full((seq.shape[0], t_out - 1), eta, device=seq.device))
    pred = model(x, t_out, target=y, teacher_mask=mask, return_context=True)
    target = seq[:, 1 : t_in + t_out]
    return pred, target, F.l1_loss(pred.float(), target.float())


#: OpenSTL's E3D-LSTM recipe (configs/mmnist/E3DLSTM.py, openstl/methods/e3dlstm.py → PredRNN): Adam at lr
#: 1e-4 with a OneCycle schedule, batch 16, 200 epochs of 10,000 sequences (125,000 steps), no gradient
#: clipping; loss MSE + L1 over every one-step prediction; scheduled sampling with η falling linearly from 1
#: by 2e-5 per step to 0 at step 50,000 = 0.4 of the run.
E3DLSTM_RECIPE = Recipe(
    lr=1e-4, batch_size=16, epochs=200, epoch_size=10000, loss="mse", scheduled_sampling=0.4, grad_clip=0.0
)

ARCHITECTURE = register(
    Architecture(
        name="e3dlstm",
        model=E3DLSTM,
        config=E3DLSTMConfig,
        **{**recurrent_declaration("cells.0.conv_x.weight"), "recipe": E3DLSTM_RECIPE},
        resolution_params=lambda cfg: [f"cells.{i}.norm_c." for i in range(cfg.num_layers)],
        # every cell keeps a window of window_length states
        activation_floats=lambda cfg, b, t, h, w: rollout_activation_floats(
            cfg, b, t, h, w, cell_floats=16.0 * cfg.window_length
        ),
        tiny_config=recurrent_tiny_config(),
        description="E3D-LSTM (Wang et al., ICLR 2019): 3-D conv LSTM cells over a window of frames with an eidetic "
        "memory recalled by self-attention",
        training_forward=e3dlstm_training_forward,
    )
)
