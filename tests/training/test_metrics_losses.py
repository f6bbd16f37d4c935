"""Evaluation metrics (stzoo.metrics) and training losses (stzoo.training.losses), checked against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stzoo.errors import InputError
from stzoo.metrics import MetricAccumulator, evaluate_frames, frame_mae, frame_mse, frame_psnr, frame_ssim
from stzoo.training.losses import ddr_loss, mse_ddr_loss


# ---------------------------------------------------------------------------------------------
# independent numpy references
# ---------------------------------------------------------------------------------------------
def np_gauss_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = np.array([math.exp(-((i - size // 2) ** 2) / (2 * sigma**2)) for i in range(size)])
    g /= g.sum()
    return np.outer(g, g)


def np_filter_valid(img: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Plain sliding-window weighted sum over the valid region (no padding)."""
    k = win.shape[0]
    h, w = img.shape
    out = np.empty((h - k + 1, w - k + 1))
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            out[i, j] = (img[i : i + k, j : j + k] * win).sum()
    return out


def np_ssim_2d(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. (2004) SSIM, Gaussian 11×11 σ=1.5, K1=.01, K2=.03, L=1, mean of the valid map."""
    win = np_gauss_window()
    c1, c2 = (0.01 * 1) ** 2, (0.03 * 1) ** 2
    mx, my = np_filter_valid(x, win), np_filter_valid(y, win)
    vx = np_filter_valid(x * x, win) - mx**2
    vy = np_filter_valid(y * y, win) - my**2
    cxy = np_filter_valid(x * y, win) - mx * my
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(smap.mean())


def np_frame_ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    pred = np.clip(pred, 0, 1)
    b, t, c = pred.shape[:3]
    out = np.zeros((b, t))
    for i in range(b):
        for j in range(t):
            out[i, j] = np.mean([np_ssim_2d(pred[i, j, k], target[i, j, k]) for k in range(c)])
    return out


def np_ddr(pred: np.ndarray, target: np.ndarray, tau: float, reduction: str) -> float:
    b, t = pred.shape[:2]
    n = int(np.prod(pred.shape[2:]))
    kls = []
    for i in range(b):
        for j in range(t - 1):
            dp = (pred[i, j + 1] - pred[i, j]).ravel() / tau
            dy = (target[i, j + 1] - target[i, j]).ravel() / tau
            p = np.exp(dp - dp.max())
            p /= p.sum()
            q = np.exp(dy - dy.max())
            q /= q.sum()
            kls.append(np.sum(p * (np.log(p) - np.log(q))))
    kl = float(np.mean(kls))
    return kl / n if reduction == "mean" else kl


def rand(*shape, seed=0, lo=0.0, hi=1.0) -> torch.Tensor:
    g = np.random.default_rng(seed)
    return torch.from_numpy(g.uniform(lo, hi, size=shape)).float()


# ---------------------------------------------------------------------------------------------
# MSE / MAE / PSNR
# ---------------------------------------------------------------------------------------------
def test_mse_mae_summed_over_frame_pixels():
    target = torch.full((1, 1, 1, 64, 64), 0.4)
    pred = target + 0.1
    assert frame_mse(pred, target).shape == (1, 1)
    assert frame_mse(pred, target).item() == pytest.approx(40.96, rel=1e-4)
    assert frame_mae(pred, target).item() == pytest.approx(409.6, rel=1e-4)


def test_mse_mae_random_against_numpy():
    pred, target = rand(2, 3, 2, 5, 4, seed=1, lo=-0.3, hi=1.3), rand(2, 3, 2, 5, 4, seed=2)
    p, y = np.clip(pred.double().numpy(), 0, 1), target.double().numpy()
    np.testing.assert_allclose(frame_mse(pred, target).numpy(), ((p - y) ** 2).sum(axis=(2, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(frame_mae(pred, target).numpy(), np.abs(p - y).sum(axis=(2, 3, 4)), rtol=1e-5)


def test_predictions_are_clipped():
    target = torch.zeros(1, 2, 1, 4, 4)
    target[:, 1] = 1.0
    pred = torch.empty_like(target)
    pred[:, 0] = -0.5  # clipped to 0 = target
    pred[:, 1] = 1.7  # clipped to 1 = target
    assert frame_mse(pred, target).abs().max().item() == 0.0
    assert frame_mae(pred, target).abs().max().item() == 0.0
    assert frame_psnr(pred, target).tolist() == [[100.0, 100.0]]
    # target is not clipped: prediction 2.0 -> 1.0, target 0 -> per-pixel error 1
    assert frame_mse(torch.full((1, 1, 1, 2, 2), 2.0), torch.zeros(1, 1, 1, 2, 2)).item() == pytest.approx(4.0)


def test_psnr_hand_cases():
    target = torch.zeros(1, 3, 1, 8, 8)
    pred = torch.zeros_like(target)
    pred[:, 0] = 0.1  # pixel mse 0.01 -> 20 dB
    pred[:, 1] = 0.5  # pixel mse 0.25 -> 10 log10 4 dB
    pred[:, 2, :, :4] = 1.0  # half the pixels off by 1: mse 0.5 -> 10 log10 2 dB
    psnr = frame_psnr(pred, target)[0].tolist()
    assert psnr[0] == pytest.approx(20.0, abs=1e-4)
    assert psnr[1] == pytest.approx(10 * math.log10(4), abs=1e-4)
    assert psnr[2] == pytest.approx(10 * math.log10(2), abs=1e-4)


def test_metric_shape_errors():
    with pytest.raises(InputError):
        frame_mse(torch.zeros(1, 2, 1, 4, 4), torch.zeros(1, 2, 1, 4, 5))
    with pytest.raises(InputError):
        frame_mae(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))
    with pytest.raises(InputError):
        frame_ssim(torch.zeros(1, 1, 1, 8, 8), torch.zeros(1, 1, 1, 8, 8))  # smaller than the window


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------
def test_ssim_identical_frames_is_one():
    x = rand(2, 2, 1, 16, 16, seed=3)
    np.testing.assert_allclose(frame_ssim(x, x).numpy(), np.ones((2, 2)), atol=1e-5)


def test_ssim_matches_numpy_reference():
    pred = rand(2, 2, 2, 16, 13, seed=4, lo=-0.1, hi=1.1)
    target = rand(2, 2, 2, 16, 13, seed=5)
    # make the pair correlated so SSIM is far from 0
    pred[0, 0] = 0.7 * target[0, 0] + 0.3 * pred[0, 0]
    got = frame_ssim(pred, target).double().numpy()
    want = np_frame_ssim(pred.double().numpy(), target.double().numpy())
    assert got.shape == (2, 2)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert want[0, 0] > 0.3 and abs(want[1, 1]) < 0.3  # the two regimes really differ


def test_ssim_constant_frames():
    # flat frames a and b: SSIM = (2ab + C1) / (a² + b² + C1) (variances are 0)
    a, b = 0.2, 0.6
    c1 = 0.01**2
    got = frame_ssim(torch.full((1, 1, 1, 12, 12), a), torch.full((1, 1, 1, 12, 12), b)).item()
    assert got == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# MetricAccumulator
# ---------------------------------------------------------------------------------------------
def test_accumulator_averages_over_frames_and_sequences():
    acc = MetricAccumulator()
    assert all(math.isnan(v) for v in acc.result().values())
    batches = [
        (rand(2, 3, 1, 12, 12, seed=10), rand(2, 3, 1, 12, 12, seed=11)),
        (rand(1, 3, 1, 12, 12, seed=12), rand(1, 3, 1, 12, 12, seed=13)),
        (rand(3, 3, 1, 12, 12, seed=14), rand(3, 3, 1, 12, 12, seed=15)),
    ]
    per_frame = {"mse": [], "mae": [], "psnr": [], "ssim": []}
    for pred, target in batches:
        acc.update(pred, target)
        p, y = pred.double().numpy(), target.double().numpy()
        per_frame["mse"] += list(((p - y) ** 2).sum(axis=(2, 3, 4)).ravel())
        per_frame["mae"] += list(np.abs(p - y).sum(axis=(2, 3, 4)).ravel())
        per_frame["psnr"] += list((10 * np.log10(1 / ((p - y) ** 2).mean(axis=(2, 3, 4)))).ravel())
        per_frame["ssim"] += list(np_frame_ssim(p, y).ravel())
    assert acc.frames == 18 and acc.sequences == 6
    res = acc.result()
    assert set(res) == {"mse", "mae", "psnr", "ssim"}
    for k, vals in per_frame.items():
        assert len(vals) == 18
        assert res[k] == pytest.approx(float(np.mean(vals)), rel=1e-5, abs=1e-5), k


def test_evaluate_frames_one_batch():
    target = torch.full((2, 2, 1, 16, 16), 0.25)
    res = evaluate_frames(target + 0.25, target)
    assert res["mse"] == pytest.approx(256 * 0.0625, rel=1e-5)
    assert res["mae"] == pytest.approx(256 * 0.25, rel=1e-5)
    assert res["psnr"] == pytest.approx(10 * math.log10(16), abs=1e-4)
    c1 = 0.01**2
    assert res["ssim"] == pytest.approx((2 * 0.25 * 0.5 + c1) / (0.0625 + 0.25 + c1), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# DDR
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.1, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_ddr_matches_numpy(tau, reduction):
    pred, target = rand(2, 4, 2, 3, 5, seed=20), rand(2, 4, 2, 3, 5, seed=21)
    got = ddr_loss(pred, target, tau=tau, reduction=reduction).item()
    want = np_ddr(pred.double().numpy(), target.double().numpy(), tau, reduction)
    assert want > 0
    assert got == pytest.approx(want, rel=1e-4)


def test_ddr_mean_is_sum_over_chw():
    pred, target = rand(1, 3, 2, 4, 4, seed=22), rand(1, 3, 2, 4, 4, seed=23)
    s = ddr_loss(pred, target, reduction="sum").item()
    m = ddr_loss(pred, target, reduction="mean").item()
    assert m == pytest.approx(s / 32, rel=1e-5)


def test_ddr_hand_case_two_pixels():
    # one difference frame, two values. Δŷ = (1, 0), Δy = (0, 0), τ = 1:
    # p = (e, 1)/(e+1), q = (1/2, 1/2); KL = Σ p log(2p)
    pred = torch.tensor([0.0, 0.0, 1.0, 0.0]).reshape(1, 2, 1, 1, 2)
    target = torch.zeros(1, 2, 1, 1, 2)
    p = np.array([math.e, 1.0]) / (math.e + 1)
    kl = float(np.sum(p * np.log(2 * p)))
    assert ddr_loss(pred, target, tau=1.0, reduction="sum").item() == pytest.approx(kl, rel=1e-5)
    assert ddr_loss(pred, target, tau=1.0).item() == pytest.approx(kl / 2, rel=1e-5)


def test_ddr_zero_cases():
    x = rand(2, 5, 1, 4, 4, seed=24)
    assert ddr_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)
    # same differences (target shifted by a constant) also give 0
    assert ddr_loss(x + 0.3, x).item() == pytest.approx(0.0, abs=1e-6)
    one = ddr_loss(rand(2, 1, 1, 4, 4, seed=25), rand(2, 1, 1, 4, 4, seed=26))
    assert one.shape == () and one.item() == 0.0


def test_ddr_errors():
    with pytest.raises(InputError):
        ddr_loss(torch.zeros(1, 3, 1, 4, 4), torch.zeros(1, 3, 1, 4, 5))
    with pytest.raises(InputError):
        ddr_loss(torch.zeros(3, 1, 4, 4), torch.zeros(3, 1, 4, 4))
    with pytest.raises(InputError):
        ddr_loss(torch.zeros(1, 3, 1, 4, 4), torch.ones(1, 3, 1, 4, 4), reduction="none")


def test_ddr_has_gradient():
    pred = rand(1, 3, 1, 4, 4, seed=27).requires_grad_()
    target = rand(1, 3, 1, 4, 4, seed=28)
    ddr_loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("alpha", [0.0, 0.1, 2.5])
def test_mse_ddr_loss(alpha):
    pred, target = rand(2, 3, 1, 4, 4, seed=30), rand(2, 3, 1, 4, 4, seed=31)
    p, y = pred.double().numpy(), target.double().numpy()
    want = float(((p - y) ** 2).mean()) + alpha * np_ddr(p, y, 0.1, "mean")
    assert mse_ddr_loss(pred, target, alpha=alpha).item() == pytest.approx(want, rel=1e-5)
    want_tau = float(((p - y) ** 2).mean()) + alpha * np_ddr(p, y, 0.5, "mean")
    assert mse_ddr_loss(pred, target, alpha=alpha, tau=0.5).item() == pytest.approx(want_tau, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# the vectorised SSIM / frame_metrics against the implementation they replaced
# ---------------------------------------------------------------------------------------------
def reference_frame_ssim(
    pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """stzoo.metrics.frame_ssim as released (one 11×11 conv2d per map): the numbers in the manifest."""
    pred, target = pred.float().clamp(0, 1), target.float()
    b, t, c, h, w = pred.shape
    x = pred.reshape(b * t * c, 1, h, w)
    y = target.reshape(b * t * c, 1, h, w)
    g = torch.exp(-((torch.arange(window, dtype=torch.float64) - (window - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    k = (g[:, None] * g[None, :]).float()[None, None]
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = torch.nn.functional.conv2d(x, k), torch.nn.functional.conv2d(y, k)
    sxx = torch.nn.functional.conv2d(x * x, k) - mu_x**2
    syy = torch.nn.functional.conv2d(y * y, k) - mu_y**2
    sxy = torch.nn.functional.conv2d(x * y, k) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return ssim.mean(dim=(1, 2, 3)).reshape(b, t, c).mean(-1)


def moving_mnist_like(b: int, t: int, c: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse bright strokes on black (as in Moving MNIST) and a blurred, noisy, partly wrong forecast."""
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(b, t, c, h, w, generator=g) > 0.85).float() * torch.rand(b, t, c, h, w, generator=g)
    pred = torch.nn.functional.avg_pool2d(target.reshape(-1, 1, h, w), 3, 1, 1).reshape(b, t, c, h, w)
    pred = pred + 0.15 * torch.randn(b, t, c, h, w, generator=g)  # out of [0, 1]: clipped
    pred[0, 0] = 0.0  # an all-black forecast
    pred[-1, -1] = target[-1, -1]  # a perfect one
    return pred, target


@pytest.mark.parametrize("shape", [(3, 4, 1, 64, 64), (2, 3, 3, 17, 29), (1, 2, 1, 11, 11), (2, 1, 2, 40, 12)])
def test_ssim_matches_released_implementation(shape):
    pred, target = moving_mnist_like(*shape, seed=sum(shape))
    got, want = frame_ssim(pred, target), reference_frame_ssim(pred, target)
    assert got.shape == want.shape == shape[:2] and got.dtype == torch.float32
    assert (got - want).abs().max().item() <= 1e-5
    assert want.std().item() > 0.05  # the cases span a real range of SSIM values


def test_ssim_chunks_give_the_same_frames(monkeypatch):
    import stzoo.metrics as metrics

    pred, target = moving_mnist_like(5, 3, 1, 32, 32, seed=7)  # 15 frames
    whole = frame_ssim(pred, target)
    monkeypatch.setattr(metrics, "SSIM_CHUNK", 1)  # 4 frames of 32×32 per step: 4 chunks, the last short
    chunked = frame_ssim(pred, target)
    assert torch.allclose(chunked, whole, atol=1e-6, rtol=0)
    assert (chunked - reference_frame_ssim(pred, target)).abs().max().item() <= 1e-5


def test_ssim_each_frame_is_its_own():
    # a batch gives each frame the value it has alone: no mixing across frames, channels or chunks
    pred, target = moving_mnist_like(2, 3, 2, 24, 24, seed=11)
    batch = frame_ssim(pred, target)
    for i in range(2):
        for j in range(3):
            alone = frame_ssim(pred[i : i + 1, j : j + 1], target[i : i + 1, j : j + 1])
            assert abs(alone.item() - batch[i, j].item()) <= 1e-6


def test_ssim_window_and_sigma_are_honoured():
    pred, target = moving_mnist_like(2, 2, 1, 20, 20, seed=3)
    for window, sigma in ((7, 1.0), (11, 1.5), (15, 3.0)):
        got = frame_ssim(pred, target, window=window, sigma=sigma)
        want = reference_frame_ssim(pred, target, window=window, sigma=sigma)
        assert (got - want).abs().max().item() <= 1e-5
    assert (frame_ssim(pred, target, window=7) - frame_ssim(pred, target)).abs().max().item() > 1e-3


def test_frame_metrics_match_the_single_metrics():
    from stzoo.metrics import frame_metrics

    pred, target = moving_mnist_like(3, 4, 1, 64, 64, seed=5)
    got = frame_metrics(pred, target)
    assert set(got) == {"mse", "mae", "ssim", "psnr"}
    torch.testing.assert_close(got["mse"], frame_mse(pred, target), rtol=1e-6, atol=0)
    torch.testing.assert_close(got["mae"], frame_mae(pred, target), rtol=1e-6, atol=0)
    torch.testing.assert_close(got["psnr"], frame_psnr(pred, target), rtol=1e-6, atol=0)
    assert (got["ssim"] - reference_frame_ssim(pred, target)).abs().max().item() <= 1e-5
    assert got["psnr"][-1, -1].item() == 100.0  # the perfect frame is capped


def test_accumulator_matches_released_metrics():
    # the sums MetricAccumulator reports are those of the released per-frame functions
    batches = [moving_mnist_like(4, 10, 1, 64, 64, seed=s) for s in (1, 2)]
    acc = MetricAccumulator()
    sums = {"mse": 0.0, "mae": 0.0, "ssim": 0.0, "psnr": 0.0}
    for pred, target in batches:
        acc.update(pred, target)
        p = pred.double().clamp(0, 1)
        sums["mse"] += float((p - target.double()).pow(2).flatten(2).sum(-1).sum())
        sums["mae"] += float((p - target.double()).abs().flatten(2).sum(-1).sum())
        sums["ssim"] += float(reference_frame_ssim(pred, target).double().sum())
        mse = (p - target.double()).pow(2).flatten(2).mean(-1)
        sums["psnr"] += float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0).sum())
    res = acc.result()
    assert acc.frames == 80 and acc.sequences == 8
    for k in sums:
        assert res[k] == pytest.approx(sums[k] / 80, rel=1e-5, abs=1e-6), k


def test_metrics_of_frames_smaller_than_the_ssim_window():
    """8×8 frames: MSE / MAE / PSNR as usual, SSIM NaN (undefined) instead of an error mid-evaluation;
    asking for SSIM itself still refuses."""
    from stzoo.errors import InputError
    from stzoo.metrics import MetricAccumulator, frame_ssim

    x = torch.rand(2, 3, 1, 8, 8)
    acc = MetricAccumulator()
    acc.update(x * 0.5, x)
    r = acc.result()
    assert math.isnan(r["ssim"])
    assert r["mse"] == pytest.approx(float((0.25 * x.square()).sum() / 6), rel=1e-5)
    with pytest.raises(InputError, match="11×11"):
        frame_ssim(x, x)
