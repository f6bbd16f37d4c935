"""Forced 2-D turbulence (Kolmogorov flow) sequences, generated on the fly (no downloads).

Equations
    Incompressible Navier–Stokes in vorticity form on the periodic square [0, 2π)²::

        ∂ω/∂t + u·∇ω = ν ∇²ω − α ω + f,      f(y) = A·k_f·cos(k_f·y)

    with ω = ∂v/∂x − ∂u/∂y, the stream function ψ solving −∇²ψ = ω (ψ̂ = ω̂/|k|², mean mode 0)
    and u = ∂ψ/∂y, v = −∂ψ/∂x, so ∇·u = 0 identically. f is the curl of the body force
    (−A·sin(k_f·y), 0): Kolmogorov forcing, the flow of Chandler & Kerswell ("Invariant recurrent
    solutions embedded in a turbulent two-dimensional Kolmogorov flow", *J. Fluid Mech.*, 2013:
    body force sin 4y·x̂ on [0, 2π]²), whose forcing differs from ours only by the shift
    y → y + π/k_f. Defaults: A = 1, k_f = 4, α = 0 (no drag), ν = 1/40, i.e. Re = √A/ν = 40,
    their low-forcing, weakly turbulent case.

Numerics
    Pseudo-spectral with ``numpy.fft.rfft2`` on an n×n grid (n even, default 64); products are
    formed on the grid and the nonlinear term is dealiased with the 2/3 rule (modes with
    |k_x| or |k_y| ≥ n/3 are zeroed). Viscosity and drag are integrated exactly by an integrating
    factor e^{(−ν|k|² − α)t}; the advection and forcing by classical RK4 on top of it (IF-RK4),
    step dt (default 0.02).

Stability bound
    RK4 is stable for advection when dt·λ ≤ 2√2, λ = (n/3)·max(|u| + |v|) being a bound on the
    advective eigenvalues of the dealiased modes (viscous damping ignored: conservative).
    :class:`Kolmogorov` refuses a dt for which the *laminar* Kolmogorov flow (a solution of the
    equations, speed U_L = A/(ν k_f² + α)) already breaks that bound, and the solver checks
    the bound on the actual flow at every step, raising :class:`~stzoo.errors.ConfigError` with a
    dt that would do if it is ever exceeded. At the defaults the largest dt·λ measured over 8
    sequences of 50 time units was 2.07 (73 % of the limit; with dt = 0.025, 16 sequences of
    19.5 time units already reached 2.59).

Resolution / Re trade-off
    At n = 64 (42 dealiased modes per axis) the enstrophy above |k| = 16 was, in our runs, 8.6·10⁻⁵
    of the total at Re = 40, 2.4·10⁻³ at Re = 100 and 1.1·10⁻² at Re = 250. Re = 40 is well
    resolved; Re is refused above ``100·(n/64)²`` (the dissipation wavenumber of the enstrophy
    cascade grows like Re^½, so the grid must grow like it).

Initial fields, spin-up, frames
    White noise filtered to the band 1 ≤ |k| ≤ 8 and scaled to an rms vorticity of 2.5; then
    ``spin_up`` steps (default 500 = 10 time units) and a frame every ``frame_every`` steps
    (default 25 = 0.5 time units). One channel. Measured over 8 sequences: the rms vorticity
    rises to about 3.0 at t = 10 and relaxes to 2.0–2.1 by t = 40–50, so the default frames
    (t = 10 … 19.5) show turbulence that is developed but still relaxing — raise ``spin_up`` for the
    statistically steady state, at proportional cost. The correlation of a frame with the one
    0.5 / 1 / 2 / 5 time units later was 0.95 / 0.86 / 0.72 / 0.58.

What the model sees (normalisation)
    x = 0.5 + 0.5·tanh(ω / s) with s = :data:`VORTICITY_SCALE` = 5, in (0, 1), float32: nearly
    linear for |ω| ≲ s (for t ≥ 10, |ω| reached 12.9 at most and its 99.9th percentile was 9.7
    in the run above; 9.7 maps to 0.979). Map back with ω = s·artanh(2x − 1)
    (:func:`unit_to_vorticity`).

Determinism
    Sequence ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)`` (its initial field comes from
    ``numpy.random.default_rng([seed, e, i])``); a batch is integrated as one array, and the FFTs
    and element-wise operations treat each sequence alone, so a sequence comes out bit-identical in
    any batch (tested).

Test set: :func:`kolmogorov_test_set` — :data:`TEST_SIZE` sequences, seed :data:`TEST_SEED`, epoch 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from stzoo.data.fields import SimulatedSequences, field_test_cache, setting_int, setting_number
from stzoo.data.registry import DatasetSpec, register_dataset
from stzoo.errors import ConfigError

__all__ = [
    "SPEC",
    "Kolmogorov",
    "SpectralNS2D",
    "kolmogorov_test_set",
    "vorticity_to_unit",
    "unit_to_vorticity",
    "random_vorticity",
    "VORTICITY_SCALE",
    "TEST_SEED",
    "TEST_SIZE",
    "RK4_LIMIT",
    "RE_MAX_64",
]

TEST_SEED = 20261125
TEST_SIZE = 500
#: s of the map x = 0.5 + 0.5·tanh(ω/s)
VORTICITY_SCALE = 5.0
#: RK4's stability limit on the imaginary axis, 2√2
RK4_LIMIT = 2.0 * math.sqrt(2.0)
#: largest Re = √A/ν accepted on a 64×64 grid (scaled by (n/64)² for other grids)
RE_MAX_64 = 100.0
MIN_SIZE = 8


def vorticity_to_unit(w, scale: float = VORTICITY_SCALE):
    """Physical vorticity → the (0, 1) values the models see: ``0.5 + 0.5·tanh(ω/scale)``."""
    if isinstance(w, torch.Tensor):
        return 0.5 + 0.5 * torch.tanh(w / scale)
    return 0.5 + 0.5 * np.tanh(np.asarray(w) / scale)


def unit_to_vorticity(x, scale: float = VORTICITY_SCALE):
    """Inverse of :func:`vorticity_to_unit`: ``scale·artanh(2x − 1)`` (values clipped just inside (0, 1))."""
    if isinstance(x, torch.Tensor):
        eps = torch.finfo(x.dtype).eps if x.is_floating_point() else 1e-7
        return scale * torch.atanh((2 * x - 1).clamp(-1 + eps, 1 - eps))
    x = np.asarray(x)
    eps = np.finfo(x.dtype).eps if np.issubdtype(x.dtype, np.floating) else 1e-7
    return scale * np.arctanh(np.clip(2 * x - 1, -1 + eps, 1 - eps))


def _check_size(n) -> int:
    n = setting_int(n, "size", MIN_SIZE)
    if n % 2:
        raise ConfigError(f"size must be even for the real FFT grid (Nyquist mode), got {n}")
    return n


class SpectralNS2D:
    """IF-RK4 pseudo-spectral solver of ``∂ω/∂t + u·∇ω = ν∇²ω − αω + A k_f cos(k_f y)`` on [0, 2π)².

    Fields are batched: physical ``…×n×n`` (axis −2 is y, axis −1 is x), spectral ``…×n×(n/2+1)``
    (``numpy.fft.rfft2`` layout). ``viscosity`` may be 0 here (inviscid tests); the datasets need it
    positive. ``dtype`` is float64 or float32 (spectra complex128 / complex64).
    """

    def __init__(
        self,
        n: int = 64,
        *,
        viscosity: float = 1 / 40,
        drag: float = 0.0,
        forcing_amplitude: float = 1.0,
        forcing_wavenumber: int = 4,
        dt: float = 0.02,
        dtype=np.float64,
        check_cfl: bool = True,
    ):
        self.n = _check_size(n)
        self.viscosity = setting_number(viscosity, "viscosity", minimum=0.0)
        self.drag = setting_number(drag, "drag", minimum=0.0)
        self.forcing_amplitude = setting_number(forcing_amplitude, "forcing_amplitude", minimum=0.0)
        self.forcing_wavenumber = setting_int(forcing_wavenumber, "forcing_wavenumber", 1)
        if self.forcing_wavenumber >= self.n / 3:
            raise ConfigError(
                f"forcing_wavenumber {self.forcing_wavenumber} is not resolved on a {n}×{n} grid "
                f"after 2/3 dealiasing (it must be below {n / 3:.1f})"
            )
        self.dt = setting_number(dt, "dt", positive=True)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype}")
        self.cdtype = np.complex64 if self.dtype == np.float32 else np.complex128
        self.check_cfl = bool(check_cfl)
        self.dx = 2 * np.pi / self.n
        ky = np.fft.fftfreq(self.n, 1.0 / self.n)
        kx = np.fft.rfftfreq(self.n, 1.0 / self.n)
        KY, KX = np.meshgrid(ky, kx, indexing="ij")
        k2 = KX**2 + KY**2
        self.k2 = k2
        self.inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0).astype(self.dtype)
        self.ikx = (1j * KX).astype(self.cdtype)
        self.iky = (1j * KY).astype(self.cdtype)
        self.dealias = ((np.abs(KX) < self.n / 3) & (np.abs(KY) < self.n / 3)).astype(self.dtype)
        lin = -self.viscosity * k2 - self.drag
        self.E = np.exp(lin * self.dt).astype(self.dtype)
        self.E2 = np.exp(lin * self.dt / 2).astype(self.dtype)
        y = np.arange(self.n) * self.dx
        f = self.forcing_amplitude * self.forcing_wavenumber * np.cos(self.forcing_wavenumber * y)
        self.forcing = np.fft.rfft2(np.broadcast_to(f[:, None], (self.n, self.n))).astype(self.cdtype)
        #: largest advective RK4 number dt·(n/3)·max(|u|+|v|) seen by :meth:`step`
        self.max_courant = 0.0

    # ---- transforms ---------------------------------------------------------------------------
    def to_spectral(self, w: np.ndarray) -> np.ndarray:
        return np.fft.rfft2(np.asarray(w, dtype=self.dtype)).astype(self.cdtype, copy=False)

    def to_physical(self, wh: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(wh, s=(self.n, self.n)).astype(self.dtype, copy=False)

    def stream_function(self, wh: np.ndarray) -> np.ndarray:
        """ψ̂ = ω̂/|k|² (the mean mode set to 0)."""
        return wh * self.inv_k2

    def velocity(self, wh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Physical ``(u, v) = (∂ψ/∂y, −∂ψ/∂x)`` of the spectral vorticity ``wh``."""
        psi = self.stream_function(wh)
        return self.to_physical(self.iky * psi), self.to_physical(-self.ikx * psi)

    def laminar_speed(self) -> float:
        """U_L = A/(ν k_f² + α): the speed of the steady laminar Kolmogorov flow (∞ if undamped)."""
        damping = self.viscosity * self.forcing_wavenumber**2 + self.drag
        if self.forcing_amplitude == 0:
            return 0.0
        return self.forcing_amplitude / damping if damping > 0 else math.inf

    def courant(self, speed: float) -> float:
        """dt·(n/3)·speed: the advective RK4 number of a flow with max(|u| + |v|) = ``speed``."""
        return self.dt * (self.n / 3) * speed

    # ---- right-hand side ----------------------------------------------------------------------
    def _buffers(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Work arrays for spectra of ``shape``, allocated once per shape (no page faults per step)."""
        work = getattr(self, "_work", None)
        if work is None or work["shape"] != shape:
            phys = shape[:-1] + (self.n,)
            work = {
                "shape": shape,
                "stack": np.empty((4,) + shape, self.cdtype),
                "phys": np.empty((4,) + phys, self.dtype),
                "prod": np.empty(phys, self.dtype),
                "prod2": np.empty(phys, self.dtype),
                **{k: np.empty(shape, self.cdtype) for k in ("a", "b", "c", "d", "t", "t2", "state")},
            }
            self._work = work
        return work

    def nonlinear(self, wh: np.ndarray, *, track: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """``−(u·∇ω)^`` (dealiased) ``+ f̂`` of the spectral vorticity ``wh`` (into ``out`` if given);
        with ``track`` also checks the advective stability bound on the flow (see the module doc)."""
        wh = np.asarray(wh, dtype=self.cdtype)
        w = self._buffers(wh.shape)
        stack, phys = w["stack"], w["phys"]
        np.multiply(wh, self.inv_k2, out=stack[2])  # ψ̂
        np.multiply(self.iky, stack[2], out=stack[0])  # û = i k_y ψ̂
        np.multiply(self.ikx, stack[2], out=stack[1])
        np.negative(stack[1], out=stack[1])  # v̂ = −i k_x ψ̂
        np.multiply(self.ikx, wh, out=stack[2])  # ∂ω/∂x
        np.multiply(self.iky, wh, out=stack[3])  # ∂ω/∂y
        np.fft.irfftn(stack, s=(self.n, self.n), axes=(-2, -1), out=phys)
        u, v, wx, wy = phys
        if track and self.check_cfl:
            np.abs(u, out=w["prod"])
            np.abs(v, out=w["prod2"])
            w["prod"] += w["prod2"]
            speed = float(w["prod"].max())
            c = self.courant(speed)
            self.max_courant = max(self.max_courant, c)
            if not c <= RK4_LIMIT:
                good = 0.5 * RK4_LIMIT / ((self.n / 3) * speed) if speed > 0 else self.dt
                raise ConfigError(
                    f"time step dt = {self.dt} is too large for this flow: dt·(n/3)·max(|u|+|v|) = "
                    f"{c:.3g} exceeds RK4's stability limit {RK4_LIMIT:.3f} (max(|u|+|v|) = "
                    f"{speed:.3g}); use dt ≤ {good:.3g}"
                )
        np.multiply(u, wx, out=w["prod"])
        np.multiply(v, wy, out=w["prod2"])
        w["prod"] += w["prod2"]
        if out is None:
            out = np.empty(wh.shape, self.cdtype)
        np.fft.rfftn(w["prod"], axes=(-2, -1), out=out)
        out *= self.dealias
        np.negative(out, out=out)
        out += self.forcing
        return out

    def step(self, wh: np.ndarray, steps: int = 1) -> np.ndarray:
        """``steps`` IF-RK4 steps from the spectral vorticity ``wh`` (not modified); returns the new spectrum::

            a = dt N(ω̂)            b = dt N(E½ (ω̂ + a/2))     c = dt N(E½ ω̂ + b/2)
            d = dt N(E ω̂ + E½ c)   ω̂ ← E ω̂ + (E a + 2 E½ (b + c) + d) / 6

        with E = e^{L dt}, E½ = e^{L dt/2}, L = −ν|k|² − α and N the nonlinear term plus forcing.
        """
        wh = np.asarray(wh, dtype=self.cdtype)
        w = self._buffers(wh.shape)
        dt, E, E2 = self.dtype.type(self.dt), self.E, self.E2
        half, sixth = self.dtype.type(0.5), self.dtype.type(1.0 / 6.0)
        a, b, c, d, t, t2, state = (w[k] for k in ("a", "b", "c", "d", "t", "t2", "state"))
        state[...] = wh
        for _ in range(steps):
            self.nonlinear(state, track=True, out=a)
            a *= dt
            np.multiply(a, half, out=t)
            t += state
            t *= E2
            self.nonlinear(t, out=b)
            b *= dt
            np.multiply(state, E2, out=t)
            np.multiply(b, half, out=t2)
            t += t2
            self.nonlinear(t, out=c)
            c *= dt
            np.multiply(state, E, out=t)
            np.multiply(c, E2, out=t2)
            t += t2
            self.nonlinear(t, out=d)
            d *= dt
            b += c
            b *= E2
            b *= 2
            np.multiply(a, E, out=t2)
            b += t2
            b += d
            b *= sixth
            state *= E
            state += b
        if not np.isfinite(state).all():
            raise ConfigError(f"the vorticity became non-finite (dt = {self.dt} is too large for this flow)")
        return state.copy()


def random_vorticity(
    rng: np.random.Generator, n: int, rms: float = 2.5, band: tuple[float, float] = (1.0, 8.0)
) -> np.ndarray:
    """White noise (float64, n×n) kept to the wavenumbers ``band[0] ≤ |k| ≤ band[1]``, scaled to rms ``rms``."""
    wh = np.fft.rfft2(rng.standard_normal((n, n)))
    ky = np.fft.fftfreq(n, 1.0 / n)
    kx = np.fft.rfftfreq(n, 1.0 / n)
    kk = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    wh *= (kk >= band[0]) & (kk <= min(band[1], n / 3 - 1))
    w = np.fft.irfft2(wh, s=(n, n))
    return w * (rms / w.std())


class Kolmogorov(SimulatedSequences):
    """``num_sequences`` Kolmogorov-flow sequences, each a float32 array ``seq_len×1×size×size``.

    Values are ``0.5 + 0.5·tanh(ω/VORTICITY_SCALE)`` in (0, 1); :func:`unit_to_vorticity` maps back.

    Args:
        num_sequences: length of the dataset (one "epoch").
        seq_len: frames per sequence.
        size: grid side n (even, ≥ 8).
        viscosity: ν (> 0); Re = √A/ν must not exceed ``100·(n/64)²``.
        drag: linear drag α (≥ 0).
        forcing_amplitude: A of f = A·k_f·cos(k_f·y).
        forcing_wavenumber: k_f (an integer below size/3).
        dt: solver step (time units); refused where the laminar flow already breaks RK4's bound.
        frame_every: solver steps between frames (default 25 = 0.5 time units).
        spin_up: solver steps before the first frame (default 500 = 10 time units).
        seed: base seed. Sequence ``i`` of epoch ``e`` is drawn from ``default_rng([seed, e, i])``.
        epoch: which epoch's sequences to return (see :meth:`set_epoch`).
        init_rms: rms vorticity of the random initial fields.
        float32: integrate in single precision (default; 1.5–1.8× faster than float64 in our timings).
    """

    channels = 1

    def __init__(
        self,
        num_sequences: int = 10000,
        seq_len: int = 20,
        size: int = 64,
        *,
        viscosity: float = 1 / 40,
        drag: float = 0.0,
        forcing_amplitude: float = 1.0,
        forcing_wavenumber: int = 4,
        dt: float = 0.02,
        frame_every: int = 25,
        spin_up: int = 500,
        seed: int = 0,
        epoch: int = 0,
        init_rms: float = 2.5,
        float32: bool = True,
    ):
        self.num_sequences = setting_int(num_sequences, "num_sequences", 1)
        self.seq_len = setting_int(seq_len, "seq_len", 1)
        self.size = _check_size(size)
        self.frame_every = setting_int(frame_every, "frame_every", 1)
        self.spin_up = setting_int(spin_up, "spin_up", 0)
        self.seed, self.epoch = setting_int(seed, "seed", 0), setting_int(epoch, "epoch", 0)
        self.init_rms = setting_number(init_rms, "init_rms", positive=True)
        viscosity = setting_number(viscosity, "viscosity")
        if viscosity <= 0:
            raise ConfigError(f"viscosity must be positive, got {viscosity}")
        self.solver = SpectralNS2D(
            self.size,
            viscosity=viscosity,
            drag=drag,
            forcing_amplitude=forcing_amplitude,
            forcing_wavenumber=forcing_wavenumber,
            dt=dt,
            dtype=np.float32 if float32 else np.float64,
        )
        re = math.sqrt(self.solver.forcing_amplitude) / viscosity
        re_max = RE_MAX_64 * (self.size / 64) ** 2
        if re > re_max:
            raise ConfigError(
                f"Re = √A/ν = {re:.4g} is too high for a {self.size}×{self.size} grid (at most "
                f"{re_max:.4g}: the flow would not be resolved); raise viscosity or size"
            )
        c = self.solver.courant(self.solver.laminar_speed())
        if c > RK4_LIMIT:
            good = RK4_LIMIT / ((self.size / 3) * self.solver.laminar_speed())
            raise ConfigError(
                f"time step dt = {dt} is above the stability bound: on the laminar flow (speed "
                f"{self.solver.laminar_speed():.3g}) dt·(n/3)·U_L = {c:.3g} > {RK4_LIMIT:.3f}; "
                f"use dt ≤ {good:.3g}"
            )

    @property
    def reynolds(self) -> float:
        return math.sqrt(self.solver.forcing_amplitude) / self.solver.viscosity

    def initial_vorticity(self, index: int) -> np.ndarray:
        """The physical initial vorticity (float64, size×size) of sequence ``index`` of this epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, self._check_index(index)])
        return random_vorticity(rng, self.size, self.init_rms)

    def vorticity(self, indices) -> np.ndarray:
        """Physical vorticity frames of ``indices``: B×T×size×size in the solver's precision."""
        s = self.solver
        wh = s.to_spectral(np.stack([self.initial_vorticity(i) for i in indices]))
        out = np.empty((len(indices), self.seq_len, self.size, self.size), dtype=s.dtype)
        wh = s.step(wh, self.spin_up)
        for t in range(self.seq_len):
            if t:
                wh = s.step(wh, self.frame_every)
            out[:, t] = s.to_physical(wh)
        return out

    def _frames(self, indices) -> np.ndarray:
        w = self.vorticity(indices)
        return vorticity_to_unit(w).astype(np.float32)[:, :, None]


def kolmogorov_test_set(num_sequences: int = TEST_SIZE, seed: int = TEST_SEED, **kwargs) -> Kolmogorov:
    """The fixed stzoo Kolmogorov-flow test set: ``num_sequences`` sequences of seed ``seed``, epoch 0."""
    return Kolmogorov(num_sequences=num_sequences, seed=seed, epoch=0, **kwargs)


SPEC = register_dataset(
    DatasetSpec(
        name="kolmogorov",
        label="Kolmogorov",
        description="forced 2-D turbulence (Kolmogorov flow, Re 40), normalised vorticity",
        channels=1,
        height=64,
        width=64,
        dtype="float32",
        value_range=(0.0, 1.0),
        normalisation="vorticity ω mapped to 0.5 + 0.5·tanh(ω/5) (vorticity_to_unit; unit_to_vorticity maps back)",
        test_seed=TEST_SEED,
        test_size=TEST_SIZE,
        make_train=Kolmogorov,
        make_test=kolmogorov_test_set,
        cached_test=field_test_cache("kolmogorov"),
        suggested_pool=2000,
        citation='G. J. Chandler, R. R. Kerswell, "Invariant recurrent solutions embedded in a turbulent '
        'two-dimensional Kolmogorov flow", J. Fluid Mech. 722:554 (2013)',
        tag="kolmogorov-flow",
    )
)
