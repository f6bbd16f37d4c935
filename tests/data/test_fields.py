"""Generated physical fields: Gray–Scott reaction–diffusion and Kolmogorov flow.

Physics checks (each can fail if the solver is wrong), determinism, and refusal of bad parameters.
Small grids and few steps: the whole file runs in well under a minute on one thread.
"""

import math

import numpy as np
import pytest
import torch

from stzoo.data import fields, registry
from stzoo.data.grayscott import (
    D_U,
    D_V,
    DT,
    DX,
    REGIMES,
    GrayScott,
    check_parameters,
    grayscott_step,
    grayscott_test_set,
    stable_dt,
)
from stzoo.data.grayscott import TEST_SEED as GS_TEST_SEED
from stzoo.data.kolmogorov import (
    RK4_LIMIT,
    Kolmogorov,
    SpectralNS2D,
    kolmogorov_test_set,
    random_vorticity,
    unit_to_vorticity,
    vorticity_to_unit,
)
from stzoo.data.kolmogorov import TEST_SEED as KF_TEST_SEED
from stzoo.errors import ConfigError, InputError, StzooError
from stzoo.training.train import evaluate_copy_last


# ---- helpers ----------------------------------------------------------------------------------
def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (−1 outside) and areas of the 4-connected components of a periodic boolean mask."""
    big = mask.size + 1
    lab = np.where(mask, np.arange(mask.size).reshape(mask.shape), big)
    while True:
        m = lab.copy()
        for axis in (0, 1):
            for shift in (1, -1):
                m = np.minimum(m, np.where(mask, np.roll(lab, shift, axis), big))
        m = np.where(mask, m, big)
        if np.array_equal(m, lab):
            break
        lab = m
    lab = np.where(mask, lab, -1)
    ids, areas = np.unique(lab[mask], return_counts=True)
    return np.searchsorted(ids, lab) * mask - (~mask), areas


def shape_stats(v: np.ndarray, threshold: float = 0.25) -> dict:
    """Coverage, blob count/areas, area-weighted isoperimetric ratio P²/(4πA) and hole count of v > threshold."""
    m = v > threshold
    lab, areas = components(m)
    inner = np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1)
    edge = m & ~inner
    perims = np.bincount(lab[edge], minlength=len(areas)) if len(areas) else np.zeros(0)
    q = perims**2 / (4 * np.pi * np.maximum(areas, 1))
    _, holes = components(~m)
    return {
        "coverage": float(m.mean()),
        "blobs": len(areas),
        "areas": areas,
        "q": float((q * areas).sum() / max(areas.sum(), 1)),
        "holes": len(holes),
    }


# ---- Gray–Scott: numerics ------------------------------------------------------------------------
def test_diffusion_of_a_fourier_mode_matches_the_discrete_decay_factor():
    n, steps, (mx, my) = 32, 60, (3, 2)
    y, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    mode = np.cos(2 * np.pi * mx * x / n) * np.cos(2 * np.pi * my * y / n)
    u = 0.5 + 0.1 * mode
    v = 0.2 + 0.05 * mode
    grayscott_step(u, v, 0.0, 0.0, steps=steps, reaction=False)
    lam = 4 * (np.sin(np.pi * mx / n) ** 2 + np.sin(np.pi * my / n) ** 2)  # −(5-point symbol)
    ru, rv = D_U * DT / DX**2, D_V * DT / DX**2
    np.testing.assert_allclose(u, 0.5 + 0.1 * (1 - ru * lam) ** steps * mode, rtol=0, atol=1e-13)
    np.testing.assert_allclose(v, 0.2 + 0.05 * (1 - rv * lam) ** steps * mode, rtol=0, atol=1e-13)
    # and the continuum decay rate for this smooth mode is close (5-point stencil error only)
    k2 = (2 * np.pi / (n * DX)) ** 2 * (mx**2 + my**2)
    assert abs((1 - ru * lam) ** steps / math.exp(-D_U * k2 * DT * steps) - 1) < 0.05


def test_mass_is_conserved_without_feed_and_kill():
    rng = np.random.default_rng(1)
    u0, v0 = rng.uniform(0.3, 1.0, (2, 40, 40)), rng.uniform(0.0, 0.5, (2, 40, 40))
    # diffusion only: Σu and Σv separately
    u, v = u0.copy(), v0.copy()
    grayscott_step(u, v, 0.0, 0.0, steps=200, reaction=False)
    assert abs(u.sum() - u0.sum()) / u0.sum() < 1e-12 and abs(v.sum() - v0.sum()) / v0.sum() < 1e-12
    # with the reaction u + 2v → 3v (F = k = 0): only Σ(u + v)
    u, v = u0.copy(), v0.copy()
    grayscott_step(u, v, 0.0, 0.0, steps=200)
    assert abs(u.sum() - u0.sum()) > 1.0  # the reaction did move mass from u to v
    total0 = u0.sum() + v0.sum()
    assert abs(u.sum() + v.sum() - total0) / total0 < 1e-12


def test_mass_balance_with_feed_and_kill_per_step():
    ds = GrayScott(1, size=32, regimes=["waves"], seed=3)
    u, v, F, k = ds.initial_state(0)
    grayscott_step(u, v, F, k, steps=100)  # into the reacting regime
    worst, change = 0.0, 0.0
    for _ in range(50):
        before = u.sum() + v.sum()
        expected = DT * (F * (1 - u) - (F + k) * v).sum()
        grayscott_step(u, v, F, k)
        worst = max(worst, abs((u.sum() + v.sum() - before) - expected) / before)
        change = max(change, abs(expected) / before)
    assert change > 1e-4  # feed and kill do change the mass, by this much per step
    assert worst < 1e-13, worst  # and by exactly the predicted amount (to round-off)


def test_fields_stay_in_the_unit_interval_in_every_regime():
    ds = GrayScott(len(REGIMES), seq_len=4, size=48, regimes=list(REGIMES), seed=7, frame_every=100, burn_in=200)
    b = ds.batch(0, len(ds))
    assert b.dtype == torch.float32 and b.shape == (len(REGIMES), 4, 2, 48, 48)
    assert float(b.min()) >= 0.0 and float(b.max()) <= 1.0
    assert float(b[:, :, 1].max()) < 0.6  # V stays well inside, as the docs say


# ---- Gray–Scott: each regime makes its pattern ---------------------------------------------------
@pytest.fixture(scope="module")
def regime_runs():
    """4 default sequences per regime (64×64, 20 frames, t = 250 … 725 tu)."""
    out = {}
    for name in REGIMES:
        out[name] = GrayScott(4, regimes=[name], seed=12).batch(0, 4).numpy()
    return out


def regime_stats(runs) -> dict:
    """Median over the sequences of each statistic of the last frame's V (and of the motion)."""
    rows = []
    for seq in runs:
        s = shape_stats(seq[-1, 1])
        a = s["areas"]
        rows.append(
            {
                "coverage": s["coverage"],
                "blobs": s["blobs"],
                "q": s["q"],
                "holes": s["holes"],
                "max_area": a.max() if len(a) else 0,
                "largest": a.max() / a.sum() if len(a) else 0,
                "diameter": 2 * np.sqrt(np.median(a) / np.pi) if len(a) else 0,
                # fraction of pixels whose V changes by more than 0.1 from one frame to the next
                "moving": float((np.abs(np.diff(seq[:, 1], axis=0)) > 0.1).mean()),
            }
        )
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]}


def test_spot_regimes_make_compact_round_spots(regime_runs):
    for name in ("spots", "mitosis"):
        s = regime_stats(regime_runs[name])
        assert s["blobs"] >= 1 and s["max_area"] < 100 and s["q"] < 1.5 and s["coverage"] < 0.25, (name, s)
        assert 5 <= s["diameter"] <= 10, (name, s)  # 5–10 cells: resolved, many per frame
    assert regime_stats(regime_runs["spots"])["blobs"] >= 10  # these spots fill the space


def test_worm_regimes_make_elongated_structures(regime_runs):
    for name in ("maze", "coral"):
        s = regime_stats(regime_runs[name])
        assert s["max_area"] >= 300 and s["q"] >= 2.0 and 0.1 <= s["coverage"] <= 0.5, (name, s)


def test_holes_regime_covers_the_domain_with_holes(regime_runs):
    s = regime_stats(regime_runs["holes"])
    assert s["coverage"] >= 0.45 and s["largest"] >= 0.7 and s["holes"] >= 4, s


def test_waves_regime_keeps_moving_and_the_others_settle(regime_runs):
    for name, runs in regime_runs.items():
        moving = regime_stats(runs)["moving"]
        assert (moving > 0.01) if name == "waves" else (moving < 0.01), (name, moving)


# ---- Gray–Scott: dataset interface -----------------------------------------------------------------
def test_grayscott_is_deterministic_and_batch_independent():
    kw = dict(seq_len=3, size=32, frame_every=20, burn_in=40, seed=5)
    a, b = GrayScott(6, **kw), GrayScott(6, **kw)
    batch = a.batch(1, 5).numpy()
    for j, i in enumerate(range(1, 5)):
        assert batch[j].tobytes() == b.sequence(i).tobytes()  # same bytes alone as in a batch
    assert a.sequence(2).dtype == np.float32 and a[2].shape == (3, 2, 32, 32)
    assert not np.array_equal(a.sequence(1), a.sequence(2))
    c = GrayScott(6, **kw)
    c.set_epoch(1)
    assert not np.array_equal(c.sequence(1), a.sequence(1))
    assert not np.array_equal(GrayScott(6, **{**kw, "seed": 6}).sequence(1), a.sequence(1))
    t = grayscott_test_set(num_sequences=2, seq_len=2, size=16, burn_in=10, frame_every=5)
    assert t.seed == GS_TEST_SEED and t.epoch == 0 and len(t) == 2


def test_grayscott_refuses_bad_parameters():
    assert stable_dt(0.1, 0.0) == pytest.approx(1 / 1.9)
    for kw in (
        {"size": 4},
        {"size": 7.5},
        {"regimes": ["nope"]},
        {"regimes": [(0.2, 0.06)]},
        {"regimes": [(0.03, -0.01)]},
        {"regimes": [(0.03, 0.09)]},
        {"dt": 0.6},
        {"dt": 0.0},
        {"dx": 0.005},
        {"frame_every": 0},
        {"burn_in": -1},
        {"regimes": []},
        {"seq_len": 0},
    ):
        with pytest.raises(ConfigError):
            GrayScott(4, **kw)
    with pytest.raises(ConfigError):
        GrayScott(0)
    with pytest.raises(ConfigError, match="stability bound"):
        check_parameters(0.05, 0.06, dt=0.55)
    with pytest.raises(ConfigError):
        check_parameters(0.05, 0.06, D_u=-1e-5)
    check_parameters(0.05, 0.06, dt=0.5)  # the default passes
    ds = GrayScott(3, seq_len=1, size=16, burn_in=1)
    with pytest.raises(IndexError):
        ds.sequence(3)
    with pytest.raises(InputError):
        ds.batch(2, 2)
    assert issubclass(ConfigError, StzooError)


# ---- Navier–Stokes solver ------------------------------------------------------------------------
def grid(n):
    x = np.arange(n) * 2 * np.pi / n
    return np.meshgrid(x, x, indexing="ij")  # Y, X (axis −2 is y)


@pytest.mark.parametrize("drag", [0.0, 0.3])
def test_taylor_green_vortex_decays_at_the_viscous_rate(drag):
    n, nu, dt, steps = 32, 0.05, 0.02, 100
    Y, X = grid(n)
    ks = np.array([1, 2, 3])
    psi = np.stack([np.sin(k * X) * np.sin(k * Y) for k in ks])
    w0 = 2 * ks[:, None, None] ** 2 * psi  # ω = −∇²ψ
    s = SpectralNS2D(n, viscosity=nu, drag=drag, forcing_amplitude=0.0, dt=dt)
    u, v = s.velocity(s.to_spectral(w0))
    for j, k in enumerate(ks):  # u = ∂ψ/∂y, v = −∂ψ/∂x
        np.testing.assert_allclose(u[j], k * np.sin(k * X) * np.cos(k * Y), atol=1e-12)
        np.testing.assert_allclose(v[j], -k * np.cos(k * X) * np.sin(k * Y), atol=1e-12)
    w = s.to_physical(s.step(s.to_spectral(w0), steps))
    t = steps * dt
    exact = w0 * np.exp(-(2 * nu * ks**2 + drag) * t)[:, None, None]
    rel = np.abs(w - exact).max() / np.abs(exact).max()
    assert rel < 1e-10, rel
    assert np.abs(w[2]).max() < 0.5 * np.abs(w0[2]).max()  # it did decay (k = 3: by e^{−1.8})


def test_velocity_is_divergence_free_and_its_curl_is_the_vorticity():
    n = 64
    s = SpectralNS2D(n)
    wh = s.to_spectral(np.stack([random_vorticity(np.random.default_rng(i), n) for i in range(2)]))
    u, v = s.velocity(wh)
    uh, vh = np.fft.rfft2(u), np.fft.rfft2(v)
    div = s.ikx * uh + s.iky * vh
    scale = np.abs(s.ikx * uh).max()
    assert np.abs(div).max() / scale < 1e-13
    curl = s.ikx * vh - s.iky * uh  # ω = ∂v/∂x − ∂u/∂y
    assert np.abs(curl - wh).max() / np.abs(wh).max() < 1e-13


def test_nonlinear_term_matches_the_analytic_advection():
    n = 32
    Y, X = grid(n)
    # ψ = sin x cos 2y + ½ cos(3x + y);  ω = −∇²ψ;  u = ψ_y, v = −ψ_x
    w = 5 * np.sin(X) * np.cos(2 * Y) + 5 * np.cos(3 * X + Y)
    u = -2 * np.sin(X) * np.sin(2 * Y) - 0.5 * np.sin(3 * X + Y)
    v = -(np.cos(X) * np.cos(2 * Y) - 1.5 * np.sin(3 * X + Y))
    wx = 5 * np.cos(X) * np.cos(2 * Y) - 15 * np.sin(3 * X + Y)
    wy = -10 * np.sin(X) * np.sin(2 * Y) - 5 * np.sin(3 * X + Y)
    s = SpectralNS2D(n, forcing_amplitude=0.0)
    nl = s.to_physical(s.nonlinear(s.to_spectral(w)))
    expected = -(u * wx + v * wy)
    assert np.abs(expected).max() > 1.0  # a genuinely nonlinear case
    assert np.abs(nl - expected).max() < 1e-11
    # the forcing enters as + A k_f cos(k_f y)
    f = SpectralNS2D(n, forcing_amplitude=0.7, forcing_wavenumber=3)
    np.testing.assert_allclose(
        f.to_physical(f.nonlinear(s.to_spectral(np.zeros((n, n))))), 0.7 * 3 * np.cos(3 * Y), atol=1e-12
    )


def test_inviscid_truncated_flow_conserves_energy_and_enstrophy():
    n = 32
    s = SpectralNS2D(n, viscosity=0.0, drag=0.0, forcing_amplitude=0.0, dt=0.01)
    wh = s.to_spectral(random_vorticity(np.random.default_rng(4), n, rms=2.0)[None])

    def invariants(wh):
        u, v = s.velocity(wh)
        w = s.to_physical(wh)
        return 0.5 * np.mean(u**2 + v**2), 0.5 * np.mean(w**2)

    e0, z0 = invariants(wh)
    w_start = s.to_physical(wh)
    wh = s.step(wh, 200)
    e1, z1 = invariants(wh)
    assert np.abs(s.to_physical(wh) - w_start).max() > 0.5 * np.abs(w_start).max()  # the flow did evolve
    assert abs(e1 - e0) / e0 < 1e-6 and abs(z1 - z0) / z0 < 1e-6, (e1 / e0 - 1, z1 / z0 - 1)


def test_low_reynolds_kolmogorov_flow_relaxes_to_the_laminar_profile():
    n, nu, alpha, A, kf = 32, 0.5, 1.0, 1.0, 4
    Y, X = grid(n)
    s = SpectralNS2D(n, viscosity=nu, drag=alpha, forcing_amplitude=A, forcing_wavenumber=kf, dt=0.05)
    w0 = random_vorticity(np.random.default_rng(2), n, rms=0.5)
    wh = s.step(s.to_spectral(w0[None]), 400)  # t = 20: e^{−(ν+α)t} = 10⁻¹³
    rate, dt = nu * kf**2 + alpha, 0.05
    lam = A * kf * np.cos(kf * Y) / rate  # the laminar solution
    w = s.to_physical(wh)[0]
    assert np.abs(w - lam).max() < 2e-5 * np.abs(lam).max()
    # the remaining difference is IF-RK4's O((rate·dt)⁴) error on the forcing integral (Simpson's rule
    # for ∫ e^{−rate·s} ds): the scheme's own fixed point is matched to round-off
    E, E2 = math.exp(-rate * dt), math.exp(-rate * dt / 2)
    fixed = A * kf * np.cos(kf * Y) * dt * (1 + 4 * E2 + E) / (6 * (1 - E))
    assert np.abs(w - fixed).max() < 1e-12
    u, v = s.velocity(wh)  # u = −A sin(k_f y)/(ν k_f² + α), v = 0
    np.testing.assert_allclose(u[0], -A * np.sin(kf * Y) / rate, atol=2e-5 * A / rate)
    assert np.abs(v).max() < 1e-12
    assert s.laminar_speed() == pytest.approx(A / (nu * kf**2 + alpha))


def test_vorticity_map_round_trips():
    w = np.linspace(-12, 12, 101)
    x = vorticity_to_unit(w)
    assert x.min() > 0 and x.max() < 1 and np.all(np.diff(x) > 0)
    np.testing.assert_allclose(unit_to_vorticity(x), w, atol=1e-9)
    t = torch.tensor([-3.0, 0.0, 4.0])
    assert torch.allclose(unit_to_vorticity(vorticity_to_unit(t)), t, atol=1e-4)


# ---- Kolmogorov dataset ----------------------------------------------------------------------------
def test_kolmogorov_is_deterministic_and_batch_independent():
    kw = dict(seq_len=3, size=32, viscosity=1 / 20, frame_every=5, spin_up=10, seed=9)  # Re 20 fits 32×32
    a, b = Kolmogorov(5, **kw), Kolmogorov(5, **kw)
    batch = a.batch(0, 4).numpy()
    assert batch.dtype == np.float32 and batch.shape == (4, 3, 1, 32, 32)
    assert batch.min() > 0 and batch.max() < 1
    for i in range(4):
        assert batch[i].tobytes() == b.sequence(i).tobytes()
    assert not np.array_equal(a.sequence(0), a.sequence(1))
    a.set_epoch(2)
    assert not np.array_equal(a.sequence(0), b.sequence(0))
    assert a.solver.max_courant < RK4_LIMIT
    t = kolmogorov_test_set(num_sequences=3, **{k: v for k, v in kw.items() if k != "seed"})
    assert t.seed == KF_TEST_SEED and t.epoch == 0 and len(t) == 3
    assert not np.array_equal(t.sequence(0), Kolmogorov(5, **kw).sequence(0))


def test_kolmogorov_refuses_bad_parameters():
    for kw in (
        {"viscosity": -0.01},
        {"viscosity": 0.0},
        {"size": 33},
        {"size": 6},
        {"size": 64.0},
        {"dt": 0.1},
        {"dt": -0.01},
        {"viscosity": 0.005},
        {"forcing_wavenumber": 22},
        {"forcing_wavenumber": 0},
        {"drag": -0.1},
        {"seq_len": 0},
        {"frame_every": 0},
        {"spin_up": -1},
    ):
        with pytest.raises(ConfigError):
            Kolmogorov(2, **kw)
    with pytest.raises(ConfigError):
        SpectralNS2D(64, viscosity=-1e-3)
    with pytest.raises(ConfigError, match="too high"):
        Kolmogorov(2, size=32)  # Re 40 is not resolved on 32×32
    # a dt that the laminar flow allows (dt·(n/3)·U_L = 2.67) but the actual flow does not
    ds = Kolmogorov(1, seq_len=1, size=32, viscosity=1 / 20, dt=0.2, spin_up=300)
    with pytest.raises(ConfigError, match="too large"):
        ds.sequence(0)


# ---- registry ----------------------------------------------------------------------------------------
def test_dataset_registry():
    assert registry.list_datasets()[:3] == ["moving_mnist", "grayscott", "kolmogorov"]  # then the benchmark files
    assert [registry.dataset_channels(n) for n in registry.list_datasets()[:3]] == [1, 2, 1]
    g = registry.make_dataset("grayscott", "train", num_sequences=3, seq_len=2, size=16, burn_in=5, frame_every=5)
    assert isinstance(g, GrayScott) and len(g) == 3 and g.seed == 0
    k = registry.make_dataset(
        "kolmogorov", "test", num_sequences=2, size=16, viscosity=0.2, spin_up=2, frame_every=2, seq_len=2
    )
    assert isinstance(k, Kolmogorov) and k.seed == KF_TEST_SEED
    with pytest.raises(ConfigError):
        registry.get_dataset("nope")
    with pytest.raises(ConfigError):
        registry.make_dataset("nope")
    with pytest.raises(ConfigError):
        registry.make_dataset("grayscott", "val")
    base = evaluate_copy_last(g, frames_in=1, frames_out=1, progress=False)
    assert base["sequences"] == 3 and base["mse"] > 0
    assert [registry.test_set_size(n) for n in registry.list_datasets()[:3]] == [10000, 1000, 500]
    assert len(registry.make_dataset("grayscott", "test", seq_len=1, size=16, burn_in=1)) == 1000


def test_specs_hold_each_datasets_facts():
    mm, gs, kf = (registry.get_dataset(n) for n in ("moving_mnist", "grayscott", "kolmogorov"))
    assert (
        (mm.test_seed, gs.test_seed, kf.test_seed)
        == (20261123, GS_TEST_SEED, KF_TEST_SEED)
        == (20261123, 20261124, 20261125)
    )
    assert [s.dtype for s in (mm, gs, kf)] == ["uint8", "float32", "float32"]
    assert all((s.frames_in, s.frames_out, s.height, s.width) == (10, 10, 64, 64) for s in (mm, gs, kf))
    assert [s.baseline_key for s in (mm, gs, kf)] == [
        "copy-last-frame",
        "copy-last-frame (grayscott)",
        "copy-last-frame (kolmogorov)",
    ]
    assert [s.baseline_with_release for s in (mm, gs, kf)] == [False, True, True]
    assert registry.dataset_for_baseline("copy-last-frame (kolmogorov)") is kf
    assert registry.dataset_for_baseline("copy-last-frame") is mm and registry.dataset_for_baseline("x") is None
    assert mm.option_names == ("mnist_dir",) and gs.option_names == kf.option_names == ()
    from types import SimpleNamespace

    assert (
        mm.describe_test(SimpleNamespace(seed=7), 10, 10)
        == "stzoo Moving MNIST test (MNIST test digits, seed 7, 10→10)"
    )
    assert (
        gs.describe_test(g := gs.build("test", num_sequences=1, seq_len=1, size=16, burn_in=1), 10, 30)
        == f"stzoo grayscott test (seed {g.seed}, 10→30)"
    )
    assert all(s.citation and s.normalisation and s.label for s in (mm, gs, kf))


def test_dataset_options_go_to_their_own_dataset_only():
    mm, gs = registry.get_dataset("moving_mnist"), registry.get_dataset("grayscott")
    assert mm.own_options({"mnist_dir": "/m"}) == {"mnist_dir": "/m"}
    assert gs.own_options({"mnist_dir": "/m"}) == {} and gs.own_options(None) == {}
    with pytest.raises(ConfigError, match="mnistdir"):
        gs.own_options({"mnistdir": "/m"})  # a misspelt option is refused, not dropped
    import argparse

    p = argparse.ArgumentParser()
    registry.add_option_arguments(p)
    assert registry.options_from_namespace(p.parse_args(["--mnist-dir", "/d"])) == {"mnist_dir": "/d"}
    assert registry.options_from_namespace(p.parse_args([])) == {}
    assert "STZOO_MNIST_DIR" in p.format_help()


def test_register_dataset_refuses_clashes(monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))
    gs = registry.get_dataset("grayscott")
    with pytest.raises(ConfigError, match="already registered"):
        registry.register_dataset(replace(gs))
    with pytest.raises(ConfigError, match="already declared"):
        registry.register_dataset(replace(gs, name="other", options=registry.get_dataset("moving_mnist").options))
    with pytest.raises(ConfigError, match="dtype"):
        registry.register_dataset(replace(gs, name="other", dtype="float16"))
    with pytest.raises(ConfigError, match="DatasetSpec"):
        registry.register_dataset("grayscott")
    new = registry.register_dataset(replace(gs, name="gs2", test_size=2))
    assert registry.list_datasets()[-1] == "gs2" and new.baseline_key == "copy-last-frame (grayscott)"
    assert registry.register_dataset(replace(gs, test_size=5), replace=True).test_size == 5


def test_preview_gif(tmp_path):
    from PIL import Image

    frames = fields.save_preview(
        "grayscott", tmp_path / "gs.gif", index=1, seq_len=3, size=16, burn_in=5, frame_every=5
    )
    assert frames.shape == (3, 16, 34) and frames.min() == 0.0 and frames.max() == 1.0  # U | gap | V
    with Image.open(tmp_path / "gs.gif") as im:
        assert im.n_frames == 3 and im.size == (34, 16)
    one = fields.preview_frames(torch.full((2, 1, 8, 8), 0.25))
    assert one.shape == (2, 8, 8) and np.all(one == 0.25)
    assert np.all(fields.preview_frames(torch.full((2, 1, 8, 8), 51, dtype=torch.uint8)) == np.float32(0.2))
    with pytest.raises(InputError):
        fields.preview_frames(np.zeros((2, 3, 8, 8)))


def test_moving_mnist_goes_through_its_own_constructors(monkeypatch):
    import stzoo.data.moving_mnist as mm

    calls = []
    monkeypatch.setattr(
        mm.MovingMNIST,
        "from_mnist",
        classmethod(lambda cls, root, split, **kw: calls.append(("train", root, split, kw)) or "train-set"),
    )
    monkeypatch.setattr(mm, "moving_mnist_test_set", lambda root, **kw: calls.append(("test", root, kw)) or "test-set")
    assert registry.make_dataset("moving_mnist", "train", mnist_dir="/m", num_sequences=5, seed=3) == "train-set"
    assert registry.make_dataset("moving_mnist", "test", mnist_dir="/m", num_sequences=7) == "test-set"
    assert calls == [("train", "/m", "train", {"num_sequences": 5, "seed": 3}), ("test", "/m", {"num_sequences": 7})]


def test_manifest_entries_name_registered_datasets():
    import copy

    from stzoo.zoo.manifest import load_manifest, validate_manifest

    manifest = copy.deepcopy(load_manifest())
    validate_manifest(manifest)
    manifest["models"]["tau-grayscott-s"]["dataset"] = "nope"
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        validate_manifest(manifest)


def test_cli_data_list_shows_the_registry(capsys, monkeypatch):
    from dataclasses import replace

    from stzoo.cli.main import main

    monkeypatch.setattr(
        registry,
        "DATASETS",
        {
            **registry.DATASETS,
            "gs2": replace(registry.get_dataset("grayscott"), name="gs2", description="a second one"),
        },
    )
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == list(registry.DATASETS)
    assert [ln.split()[0] for ln in lines][:3] + [lines[-1].split()[0]] == [
        "moving_mnist",
        "grayscott",
        "kolmogorov",
        "gs2",
    ]
    assert "(options: --mnist-dir)" in lines[0] and lines[-1].endswith("a second one")
