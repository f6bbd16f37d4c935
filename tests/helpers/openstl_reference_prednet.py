"""An independent reference of OpenSTL's PredNet, for testing stzoo's importer and model.

It re-states from reading OpenSTL's source (1) the tensor names and shapes of its checkpoints and (2) its
test-time forward pass, as plain ``torch.nn.functional`` calls on an OpenSTL-layout state dict, following
OpenSTL's loop literally (one state list, the timestep counter, the extrapolation switch). It shares no
code with ``stzoo.convert`` or ``stzoo.models``.

Files read (OpenSTL tag ``OpenSTLv0.3.0``; PredNet was removed from the later branches):

* ``openstl/models/prednet_model.py``: ``PredNet_Model``. ``build_layers`` makes six ``ModuleList``
  attributes named ``A``, ``Ahat``, ``c``, ``f``, ``i``, ``o``: ``i/f/c/o[l]`` are convs (bias) from
  ``2·stack[l] + R[l] (+ R[l+1] below the top)`` to ``R[l]`` channels, input order ``[R_l, E_l, R_up]``;
  ``Ahat[2l]`` a conv ``R[l] → stack[l]`` (``Ahat[2l+1]`` its activation, no weights); ``A[2l]`` a conv
  ``2·stack[l] → stack[l+1]`` for ``l < L−1``. ``hard_sigmoid``: ``clamp(0.2·x + 0.5, 0, 1)``. ``step``:
  top-down LSTM update (``R_up = upsample(R_next)``), then bottom-up ``Ahat`` (layer 0: ReLU then
  ``clamp(max=pixel_max)``), ``E = cat(relu(Ahat − A), relu(A − Ahat))``, ``A = pool(relu(A_conv(E)))``;
  with ``extrapolation`` and ``timestep >= in_shape[0]`` the frame is replaced by ``states[-2]``, the
  previous step's prediction.
* ``openstl/utils/prednet_utils.py``: ``get_initial_states`` (zeros: R, C with R[l] channels, E with
  2·stack[l], one Ahat with stack[0], at ``H/2^l``; then the timestep 0).
* ``openstl/methods/prednet.py``: ``_predict`` runs ``cat([x, y])`` with ``extrapolation=True`` and keeps
  ``predict_list[T_in:]``.
* ``configs/mmnist/PredNet.py``: ``stack_sizes = R_stack_sizes = (1, 32, 64, 128, 256)``, all kernels 3,
  pixel_max 1, relu activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.openstl_reference import _rand


def prednet_shapes(
    stack: list[int], r_stack: list[int], a_filt: list[int], ahat_filt: list[int], r_filt: list[int]
) -> dict[str, tuple]:
    """Every tensor of OpenSTL's ``PredNet_Model`` and its shape."""
    n = len(stack)
    shapes: dict[str, tuple] = {}
    for l in range(n):  # noqa: E741
        shapes[f"Ahat.{2 * l}.weight"] = (stack[l], r_stack[l], ahat_filt[l], ahat_filt[l])
        shapes[f"Ahat.{2 * l}.bias"] = (stack[l],)
        if l < n - 1:
            shapes[f"A.{2 * l}.weight"] = (stack[l + 1], 2 * r_stack[l], a_filt[l], a_filt[l])
            shapes[f"A.{2 * l}.bias"] = (stack[l + 1],)
        c_in = 2 * stack[l] + r_stack[l] + (r_stack[l + 1] if l < n - 1 else 0)
        for g in "ifco":
            shapes[f"{g}.{l}.weight"] = (r_stack[l], c_in, r_filt[l], r_filt[l])
            shapes[f"{g}.{l}.bias"] = (r_stack[l],)
    return shapes


def prednet_state_dict(stack: list[int], r_stack: list[int], k: int = 3, seed: int = 0) -> dict[str, Tensor]:
    """Random weights (std 1/√fan-in, biases 0.1, the frame prediction's biases around 0.5) in the layout of
    OpenSTL's ``PredNet_Model``."""
    n = len(stack)
    g = torch.Generator().manual_seed(seed)
    shapes = prednet_shapes(stack, r_stack, [k] * (n - 1), [k] * n, [k] * n)
    sd = {name: _rand(g, *s, scale=0.1 if len(s) == 1 else None) for name, s in shapes.items()}
    sd["Ahat.0.bias"] = sd["Ahat.0.bias"] + 0.5  # predictions inside (0, 1): neither ReLU nor the clamp flattens them
    return sd


def _conv(sd: dict, name: str, x: Tensor) -> Tensor:
    w = sd[name + ".weight"]
    return F.conv2d(x, w, sd[name + ".bias"], padding=int((w.shape[-1] - 1) / 2))


def _hard_sigmoid(x: Tensor) -> Tensor:
    return torch.clamp(0.2 * x + 0.5, 0, 1)


def _step(sd: dict, n: int, A: Tensor, states: list, t_in: int, pixel_max: float) -> tuple[Tensor, list]:
    R_current, C_current, E_current = states[:n], states[n : 2 * n], states[2 * n : 3 * n]
    timestep = states[-1]
    if timestep >= t_in:  # extrapolation=True at test time
        A = states[-2]
    R_list: list[Tensor] = []
    C_list: list[Tensor] = []
    E_list: list[Tensor] = []
    R_up = None
    for l in reversed(range(n)):  # noqa: E741
        inputs = [R_current[l], E_current[l]]
        if l < n - 1:
            inputs.append(R_up)
        inputs = torch.cat(inputs, dim=-3)
        in_gate = _hard_sigmoid(_conv(sd, f"i.{l}", inputs))
        forget_gate = _hard_sigmoid(_conv(sd, f"f.{l}", inputs))
        cell_gate = torch.tanh(_conv(sd, f"c.{l}", inputs))
        out_gate = _hard_sigmoid(_conv(sd, f"o.{l}", inputs))
        C_next = forget_gate * C_current[l] + in_gate * cell_gate
        R_next = out_gate * torch.tanh(C_next)
        C_list.insert(0, C_next)
        R_list.insert(0, R_next)
        if l > 0:
            R_up = F.interpolate(R_next, scale_factor=2, mode="nearest")
    frame_prediction = None
    for l in range(n):  # noqa: E741
        Ahat = F.relu(_conv(sd, f"Ahat.{2 * l}", R_list[l]))  # A_activation = 'relu'
        if l == 0:
            Ahat = torch.clamp(Ahat, max=pixel_max)
            frame_prediction = Ahat
        E_list.append(torch.cat((F.relu(Ahat - A), F.relu(A - Ahat)), dim=-3))
        if l < n - 1:
            A = F.max_pool2d(F.relu(_conv(sd, f"A.{2 * l}", E_list[l])), 2, 2)
    return frame_prediction, R_list + C_list + E_list + [frame_prediction, timestep + 1]


def prednet_predict(sd: dict, x: Tensor, y: Tensor, pixel_max: float = 1.0) -> Tensor:
    """OpenSTL's ``PredNet._predict(x, y)``: B×T_out×C×H×W (``y`` is read for its length only)."""
    n = sum(1 for k in sd if k.startswith("i.") and k.endswith(".weight"))
    stack = [int(sd[f"Ahat.{2 * l}.weight"].shape[0]) for l in range(n)]  # noqa: E741
    r_stack = [int(sd[f"i.{l}.weight"].shape[0]) for l in range(n)]  # noqa: E741
    inp = torch.cat([x, y], dim=1)
    b, _, _, h, w = inp.shape
    states = []
    for _kind, sizes in (("R", r_stack), ("C", r_stack), ("E", [2 * s for s in stack])):
        states += [torch.zeros(b, sizes[l], h // 2**l, w // 2**l) for l in range(n)]  # noqa: E741
    states += [torch.zeros(b, stack[0], h, w), 0]
    preds = []
    for t in range(inp.shape[1]):
        p, states = _step(sd, n, inp[:, t], states, x.shape[1], pixel_max)
        preds.append(p)
    return torch.stack(preds[x.shape[1] :], dim=1)
