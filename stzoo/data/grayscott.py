"""Gray–Scott reaction–diffusion sequences, generated on the fly (no downloads).

The model (Gray & Scott 1984; the pattern atlas of Pearson 1993, *Science* 261:189)::

    ∂u/∂t = D_u ∇²u − u v² + F (1 − u)
    ∂v/∂t = D_v ∇²v + u v² − (F + k) v

on a periodic square grid, with Pearson's diffusion constants D_u = 2·10⁻⁵, D_v = 10⁻⁵
(D_u/D_v = 2) in his dimensionless length (lu) and time (tu) units.

Grid, dx and dt
    ``size × size`` cells (default 64) of side dx = 0.01 lu, so the default domain is 0.64 lu wide.
    Pearson used 256 cells over 2.5 lu (dx ≈ 0.0098 lu), Munafo's atlas 1/143 lu: at dx = 0.01 a spot
    of these regimes is 5–10 cells across (median diameter of the V > 0.25 blobs, checked in the
    stzoo tests), large enough for the 5-point stencil and small enough that a 64×64 frame holds
    ten to twenty spots.
    The time step is dt = 0.5 tu (Munafo's choice), so D_u·dt/dx² = 0.1 and D_v·dt/dx² = 0.05.

Scheme and stability bound
    Explicit (forward) Euler with the periodic 5-point Laplacian. With r = D·dt/dx² the update of
    u is ``u' = u (1 − 4 r_u − dt v² − dt F) + r_u Σ_neighbours u + dt F``. When

        dt · (4 D_u/dx² + 1 + F) ≤ 1     and     dt · (4 D_v/dx² + F + k) ≤ 1

    every coefficient is non-negative, so (discrete maximum principle) u stays in [0, 1] and v ≥ 0
    at every step as long as v ≤ 1; the first condition also implies the linear (von Neumann)
    stability of the diffusion, D·dt/dx² ≤ 1/4. :class:`GrayScott` refuses a dt above this bound
    (:func:`stable_dt`; 0.526 tu at the defaults with F = 0.1). That v ≤ 1 is not guaranteed by the
    scheme (the reaction can amplify v); it is *checked* on every frame, and a frame with a value
    outside [0, 1] raises :class:`~stzoo.errors.InputError` (in every regime below v stays under
    0.6, measured in the tests).

Regimes (:data:`REGIMES`; F and k as published, each with its source)
    * ``spots`` (F 0.022, k 0.057): spots that fill the space and die off in patches
      (Munafo, xmorphia page F220-k570).
    * ``mitosis`` (F 0.0367, k 0.0649): self-replicating spots (Sims, "Reaction-Diffusion
      Tutorial", "mitosis"; the splitting of type-λ solitons in Munafo's glossary).
    * ``waves`` (F 0.022, k 0.051): oscillating, moving stripes and spots; Pearson γ (Munafo, F220-k510).
    * ``maze`` (F 0.046, k 0.061): rings that merge into a maze of worms; Pearson θ (Munafo, F460-k610).
    * ``holes`` (F 0.046, k 0.0594): negative spots (holes) in a V-covered sea; Pearson ι
      (Munafo, F460-k590).
    * ``coral`` (F 0.0545, k 0.062): branching, space-filling "coral" worms (Sims, "coral growth").

    Munafo: R. Munafo, "Reaction-Diffusion by the Gray-Scott Model: Pearson's Parametrization",
    mrob.com/pub/comp/xmorphia (the per-(F, k) pages named above). Sims: K. Sims,
    karlsims.com/rd.html. Spirals (Munafo ξ, e.g. F = 0.010, k = 0.035) are not included: from the
    square seeds below on a 64×64 grid v died out within 500 tu in our runs.

    Accepted parameters: 0 ≤ F ≤ :data:`F_MAX` (0.1) and 0 ≤ k ≤ :data:`K_MAX` (0.08), the part of
    the (F, k) plane Pearson and Munafo mapped; anything else is refused with a ConfigError.

Initial condition, burn-in, frames
    u = 1, v = 0 everywhere, then 3–8 random squares (side size/16 … size/6 cells, i.e. 4–10 at
    64) set to u = 0.5, v ~ U(0.25, 0.5), plus Gaussian noise of standard deviation 0.01 on both
    fields (clipped to [0, 1] once, at t = 0). After ``burn_in`` solver steps (default 500 = 250
    tu) a frame is recorded every ``frame_every`` steps (default 50 = 25 tu), so the 20 default
    frames span t = 250 … 725 tu, while the patterns are still growing and rearranging.

Values
    Two channels, ``[U, V]``, float32, in physical units — the concentrations are already in
    [0, 1], so no normalisation is applied and nothing has to be mapped back (V rarely exceeds
    0.5, so it uses about half of the range).

Determinism
    Sequence ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: its regime and initial
    condition come from ``numpy.random.default_rng([seed, e, i])``. :meth:`GrayScott.batch`
    integrates all sequences of a batch in one vectorised array (per-sequence F and k
    broadcast), with element-wise operations only, so a sequence comes out bit-identical whichever
    batch it is generated in (tested).

Test set: :func:`grayscott_test_set` — :data:`TEST_SIZE` (1000) sequences, seed :data:`TEST_SEED`,
epoch 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from stzoo.data.fields import SimulatedSequences, field_test_cache, setting_int, setting_number
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.errors import ConfigError, InputError

__all__ = [
    "SPEC",
    "GrayScott",
    "Regime",
    "REGIMES",
    "grayscott_test_set",
    "stable_dt",
    "check_parameters",
    "grayscott_step",
    "laplacian",
    "TEST_SEED",
    "TEST_SIZE",
    "F_MAX",
    "K_MAX",
    "D_U",
    "D_V",
    "DX",
    "DT",
]

TEST_SEED = 20261124
TEST_SIZE = 1000

#: Pearson's diffusion constants (lu²/tu) and the default grid spacing (lu) and step (tu)
D_U, D_V, DX, DT = 2e-5, 1e-5, 0.01, 0.5
#: accepted range of the feed and kill rates
F_MAX, K_MAX = 0.1, 0.08
#: smallest grid the solver takes (the 5-point stencil and the seeds need a few cells)
MIN_SIZE = 8


@dataclass(frozen=True)
class Regime:
    """A named point of the (F, k) plane: the pattern it makes and where the values come from."""

    F: float
    k: float
    pattern: str
    source: str


REGIMES: dict[str, Regime] = {
    "spots": Regime(0.022, 0.057, "spots that fill the space and die off in patches", "Munafo, xmorphia F220-k570"),
    "mitosis": Regime(
        0.0367,
        0.0649,
        "self-replicating spots",
        "Sims, Reaction-Diffusion Tutorial ('mitosis'); Pearson type-λ solitons",
    ),
    "waves": Regime(0.022, 0.051, "oscillating moving stripes and spots (Pearson γ)", "Munafo, xmorphia F220-k510"),
    "maze": Regime(0.046, 0.061, "maze of worms (Pearson θ)", "Munafo, xmorphia F460-k610"),
    "holes": Regime(0.046, 0.0594, "holes / negative spots (Pearson ι)", "Munafo, xmorphia F460-k590"),
    "coral": Regime(0.0545, 0.062, "branching coral worms", "Sims, Reaction-Diffusion Tutorial ('coral growth')"),
}


def stable_dt(F: float = F_MAX, k: float = 0.0, *, dx: float = DX, D_u: float = D_U, D_v: float = D_V) -> float:
    """The largest dt (tu) for which explicit Euler keeps u in [0, 1] and v ≥ 0 (see the module doc):
    ``min(1 / (4 D_u/dx² + 1 + F), 1 / (4 D_v/dx² + F + k))``."""
    return min(1.0 / (4.0 * D_u / dx**2 + 1.0 + F), 1.0 / (4.0 * D_v / dx**2 + F + k))


def check_parameters(
    F: float, k: float, *, dt: float = DT, dx: float = DX, D_u: float = D_U, D_v: float = D_V
) -> tuple[float, float]:
    """Refuse (ConfigError) F, k outside the documented range, non-positive dx, negative diffusion or a
    dt above :func:`stable_dt`; return ``(F, k)`` as floats."""
    F, k = setting_number(F, "F"), setting_number(k, "k")
    dt, dx = setting_number(dt, "dt"), setting_number(dx, "dx")
    D_u, D_v = setting_number(D_u, "D_u"), setting_number(D_v, "D_v")
    if not 0.0 <= F <= F_MAX:
        raise ConfigError(f"feed rate F = {F} is outside the supported range [0, {F_MAX}]")
    if not 0.0 <= k <= K_MAX:
        raise ConfigError(f"kill rate k = {k} is outside the supported range [0, {K_MAX}]")
    if dx <= 0:
        raise ConfigError(f"grid spacing dx must be positive, got {dx}")
    if D_u < 0 or D_v < 0:
        raise ConfigError(f"diffusion constants must be non-negative, got D_u = {D_u}, D_v = {D_v}")
    if dt <= 0:
        raise ConfigError(f"time step dt must be positive, got {dt}")
    bound = stable_dt(F, k, dx=dx, D_u=D_u, D_v=D_v)
    if dt > bound:
        raise ConfigError(
            f"time step dt = {dt} tu is above the stability bound {bound:.4g} tu of explicit Euler "
            f"for F = {F}, k = {k}, dx = {dx} (dt·(4·D_u/dx² + 1 + F) ≤ 1 and "
            "dt·(4·D_v/dx² + F + k) ≤ 1); use a smaller dt"
        )
    return F, k


def laplacian(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Periodic 5-point sum ``a[y-1] + a[y+1] + a[x-1] + a[x+1] − 4a`` over the last two axes
    (the Laplacian times dx²), written into ``out`` without temporaries."""
    if out is None:
        out = np.empty_like(a)
    np.multiply(a, -4.0, out=out)
    out[..., 1:, :] += a[..., :-1, :]
    out[..., :1, :] += a[..., -1:, :]
    out[..., :-1, :] += a[..., 1:, :]
    out[..., -1:, :] += a[..., :1, :]
    out[..., :, 1:] += a[..., :, :-1]
    out[..., :, :1] += a[..., :, -1:]
    out[..., :, :-1] += a[..., :, 1:]
    out[..., :, -1:] += a[..., :, :1]
    return out


def grayscott_step(
    u: np.ndarray,
    v: np.ndarray,
    F,
    k,
    *,
    steps: int = 1,
    dt: float = DT,
    dx: float = DX,
    D_u: float = D_U,
    D_v: float = D_V,
    reaction: bool = True,
) -> None:
    """Advance ``u`` and ``v`` (…×H×W, updated in place) by ``steps`` explicit Euler steps.

    ``F`` and ``k`` are numbers or arrays that broadcast against ``u`` (e.g. B×1×1 for one value per
    sequence). ``reaction=False`` drops the ``u v²`` terms (diffusion, feed and kill only). Nothing
    is checked here; :func:`check_parameters` does that.
    """
    dtype = u.dtype.type
    r_u, r_v, h = dtype(D_u * dt / dx**2), dtype(D_v * dt / dx**2), dtype(dt)
    F = np.asarray(F, dtype=u.dtype)
    Fk = np.asarray(F + np.asarray(k, dtype=u.dtype), dtype=u.dtype)
    hF, hFk = h * F, h * Fk
    lu, lv = np.empty_like(u), np.empty_like(v)
    uvv = np.empty_like(u)
    for _ in range(steps):
        laplacian(u, lu)
        laplacian(v, lv)
        lu *= r_u
        lv *= r_v
        if reaction:
            np.multiply(u, v, out=uvv)
            uvv *= v
            uvv *= h
            lu -= uvv
            lv += uvv
        lu += hF  # + dt F (1 − u) = dt F − dt F u
        lu -= hF * u
        lv -= hFk * v  # − dt (F + k) v
        u += lu
        v += lv


class GrayScott(SimulatedSequences):
    """``num_sequences`` Gray–Scott sequences, each a float32 array ``seq_len×2×size×size`` (U, V).

    Args:
        num_sequences: length of the dataset (one "epoch").
        seq_len: frames per sequence.
        size: grid side in cells (≥ 8; any parity: the 5-point stencil takes it).
        regimes: the regimes to draw from, uniformly per sequence: names of :data:`REGIMES` and/or
            ``(F, k)`` pairs (default: all named regimes).
        seed: base seed. Sequence ``i`` of epoch ``e`` is drawn from ``default_rng([seed, e, i])``.
        epoch: which epoch's sequences to return (see :meth:`set_epoch`).
        frame_every: solver steps between frames (default 50 = 25 tu).
        burn_in: solver steps before the first frame (default 500 = 250 tu).
        dt: time step (tu); refused above :func:`stable_dt`.
        dx: grid spacing (lu).
    """

    channels = 2

    def __init__(
        self,
        num_sequences: int = 10000,
        seq_len: int = 20,
        size: int = 64,
        regimes: Iterable[str | Sequence[float]] | None = None,
        seed: int = 0,
        epoch: int = 0,
        frame_every: int = 50,
        burn_in: int = 500,
        dt: float = DT,
        dx: float = DX,
    ):
        self.num_sequences = setting_int(num_sequences, "num_sequences", 1)
        self.seq_len = setting_int(seq_len, "seq_len", 1)
        self.size = setting_int(size, "size", MIN_SIZE)
        self.frame_every = setting_int(frame_every, "frame_every", 1)
        self.burn_in = setting_int(burn_in, "burn_in", 0)
        self.seed, self.epoch = setting_int(seed, "seed", 0), setting_int(epoch, "epoch", 0)
        self.dt, self.dx = setting_number(dt, "dt"), setting_number(dx, "dx")
        names = list(REGIMES) if regimes is None else list(regimes)
        if not names:
            raise ConfigError("regimes must name at least one regime")
        self.regimes: list[tuple[str, float, float]] = []
        for r in names:
            if isinstance(r, str):
                if r not in REGIMES:
                    raise ConfigError(f"unknown Gray-Scott regime {r!r}; known: {', '.join(REGIMES)}")
                F, k = REGIMES[r].F, REGIMES[r].k
                name = r
            else:
                try:
                    F, k = r
                except (TypeError, ValueError):
                    raise ConfigError(f"a regime is a name or an (F, k) pair, got {r!r}") from None
                name = f"F={F},k={k}"
            F, k = check_parameters(F, k, dt=self.dt, dx=self.dx)
            self.regimes.append((name, F, k))

    def regime_of(self, index: int) -> str:
        """The name of the regime sequence ``index`` of the current epoch is drawn from."""
        rng = np.random.default_rng([self.seed, self.epoch, self._check_index(index)])
        return self.regimes[int(rng.integers(len(self.regimes)))][0]

    def initial_state(self, index: int) -> tuple[np.ndarray, np.ndarray, float, float]:
        """``(u0, v0, F, k)`` of sequence ``index`` of the current epoch (float64 fields, size×size)."""
        rng = np.random.default_rng([self.seed, self.epoch, self._check_index(index)])
        _, F, k = self.regimes[int(rng.integers(len(self.regimes)))]
        n = self.size
        u = np.ones((n, n))
        v = np.zeros((n, n))
        lo, hi = max(2, n // 16), max(3, n // 6)
        for _ in range(int(rng.integers(3, 9))):
            side = int(rng.integers(lo, hi + 1))
            y, x = rng.integers(0, n, size=2)
            ys, xs = np.arange(y, y + side) % n, np.arange(x, x + side) % n
            u[np.ix_(ys, xs)] = 0.5
            v[np.ix_(ys, xs)] = rng.uniform(0.25, 0.5)
        u += 0.01 * rng.standard_normal((n, n))
        v += 0.01 * rng.standard_normal((n, n))
        np.clip(u, 0.0, 1.0, out=u)
        np.clip(v, 0.0, 1.0, out=v)
        return u, v, F, k

    def _frames(self, indices: Sequence[int]) -> np.ndarray:
        states = [self.initial_state(i) for i in indices]
        u = np.stack([s[0] for s in states]).astype(np.float32)
        v = np.stack([s[1] for s in states]).astype(np.float32)
        F = np.array([s[2] for s in states], dtype=np.float32)[:, None, None]
        k = np.array([s[3] for s in states], dtype=np.float32)[:, None, None]
        out = np.empty((len(indices), self.seq_len, 2, self.size, self.size), dtype=np.float32)
        kw = dict(dt=self.dt, dx=self.dx)
        grayscott_step(u, v, F, k, steps=self.burn_in, **kw)
        for t in range(self.seq_len):
            if t:
                grayscott_step(u, v, F, k, steps=self.frame_every, **kw)
            out[:, t, 0], out[:, t, 1] = u, v
        lo, hi = float(out.min()), float(out.max())
        if not (math.isfinite(lo) and math.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
            raise InputError(
                f"Gray-Scott fields left [0, 1] (min {lo}, max {hi}); the parameters "
                f"(dt = {self.dt}, dx = {self.dx}) are outside what the solver handles"
            )
        return out


def grayscott_test_set(num_sequences: int = TEST_SIZE, seed: int = TEST_SEED, **kwargs) -> GrayScott:
    """The fixed stzoo Gray–Scott test set: ``num_sequences`` sequences of seed ``seed``, epoch 0."""
    return GrayScott(num_sequences=num_sequences, seed=seed, epoch=0, **kwargs)


SPEC = register_dataset(
    DatasetSpec(
        name="grayscott",
        label="Gray–Scott",
        description="Gray-Scott reaction-diffusion, U and V concentrations, six regimes",
        channels=2,
        height=64,
        width=64,
        dtype="float32",
        value_range=(0.0, 1.0),
        normalisation="none: the concentrations u and v as simulated (checked to stay in [0, 1] on every frame)",
        test_seed=TEST_SEED,
        test_size=TEST_SIZE,
        make_train=GrayScott,
        make_test=grayscott_test_set,
        cached_test=field_test_cache("grayscott"),
        citation='P. Gray, S. K. Scott, Chem. Eng. Sci. 39:1087 (1984); J. E. Pearson, "Complex patterns in a '
        "simple system\", Science 261:189 (1993); regimes from R. Munafo's xmorphia atlas and K. Sims",
        tag="gray-scott",
    )
)
