"""Synthetic footage that behaves like real video, for fine-tuning tests and benchmarks (no downloads).

A clip is a fixed camera looking at a textured scene in which one textured figure (a body and a
head, like a person seen from afar) walks slowly: ~0.25-0.5 pixel per frame, with a small bob and
a periodic change of width (the stride), turning back at the edges. On top of it:

* the background: smooth noise (a sum of low-frequency random sinusoids) plus a linear gradient,
  tinted per channel for RGB;
* the figure's own texture, attached to the figure (it moves with it, sub-pixel exactly, because
  textures are analytic sums of sinusoids evaluated at shifted coordinates), with a soft edge;
* a slow global illumination drift (±3 %);
* camera noise: Gaussian, independent per pixel, channel and frame; then quantised to uint8.

Because the motion is slow, copying the last observed frame ("persistence") is a strong
baseline, as it is on much real footage; a useful forecaster has to beat it. ``scene`` fixes the
background (one camera), ``figure`` the walker's looks (texture, tone, size), ``seed`` the path,
pace and noise: clips with one scene and one figure are like several recordings of one person
walking past one camera; changing ``figure`` too asks a model to generalise to other people.
"""

from __future__ import annotations

import numpy as np

__all__ = ["realistic_video", "realistic_clips"]


def _texture(rng: np.random.Generator, n: int, max_freq: float, channels: int):
    """A smooth random field: f(y, x) → (channels, *y.shape), sum of ``n`` sinusoids of frequency
    up to ``max_freq`` cycles per pixel, values roughly in [-1, 1]."""
    freq = rng.uniform(-max_freq, max_freq, (n, 2)) * 2 * np.pi
    phase = rng.uniform(0, 2 * np.pi, n)
    amp = rng.uniform(0.5, 1.0, n) / np.sqrt(n)
    mix = rng.uniform(0.6, 1.0, (channels, n))  # each channel weighs the components differently

    def field(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        waves = np.sin(freq[:, 0, None, None] * y + freq[:, 1, None, None] * x + phase[:, None, None])
        return np.einsum("cn,nhw->chw", mix * amp, waves) * 1.4

    return field


def realistic_video(
    frames: int = 48,
    height: int = 32,
    width: int = 48,
    *,
    rgb: bool = True,
    seed: int = 0,
    scene: int | None = None,
    figure: int | None = None,
    speed: float | None = None,
    noise: float = 0.015,
    light: float = 0.03,
) -> np.ndarray:
    """One clip, ``frames×height×width×3`` uint8 (RGB) or ``frames×height×width`` (grey).

    Args:
        frames, height, width: the clip's size (any resolution).
        rgb: three channels (else grey).
        seed: the walk: start, direction, pace, stride and bob phases, light drift, camera noise.
        scene: the background (default: ``seed``); clips with the same scene share the camera view.
        figure: the walker's texture, tone and size (default: ``seed``).
        speed: pixels per frame of the walk (default: drawn in [0.25, 0.5]).
        noise: standard deviation of the camera noise, in [0, 1] units.
        light: amplitude of the slow illumination drift (0.03: ±3 %).
    """
    c = 3 if rgb else 1
    scene_rng = np.random.default_rng(10_000 + (seed if scene is None else scene))
    fig_rng = np.random.default_rng(20_000 + (seed if figure is None else figure))
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)

    # the background: smooth noise + a gradient + a per-channel tint, in about [0.15, 0.85]
    bg_tex = _texture(scene_rng, 12, 3.0 / max(height, width), c)
    angle = scene_rng.uniform(0, 2 * np.pi)
    grad = (np.cos(angle) * (yy / height - 0.5) + np.sin(angle) * (xx / width - 0.5))[None]
    tint = scene_rng.uniform(0.35, 0.65, (c, 1, 1))
    background = tint + 0.15 * bg_tex(yy, xx) + 0.2 * grad

    # the figure: body ellipse + head disc, textured, walking with a bob and a stride
    fig_tex = _texture(fig_rng, 10, 0.2, c)
    fig_tone = fig_rng.uniform(0.1, 0.9, (c, 1, 1))
    body_h, body_w = height * fig_rng.uniform(0.22, 0.3), height * fig_rng.uniform(0.09, 0.13)
    head_r = body_w * 0.8
    speed = rng.uniform(0.25, 0.5) if speed is None else speed
    vx = speed * rng.choice([-1.0, 1.0])
    x = rng.uniform(body_w + 1, width - body_w - 1)
    y0 = rng.uniform(height * 0.45, height * 0.65)
    stride_period, bob_phase = rng.uniform(10, 16), rng.uniform(0, 2 * np.pi)
    light_period, light_phase = rng.uniform(40, 80), rng.uniform(0, 2 * np.pi)

    out = np.empty((frames, c, height, width))
    for t in range(frames):
        cy = y0 + 0.6 * np.sin(2 * np.pi * t / stride_period * 2 + bob_phase)
        w_t = body_w * (1 + 0.15 * np.sin(2 * np.pi * t / stride_period + bob_phase))
        dy, dx = yy - cy, xx - x
        body = np.hypot(dy / body_h, dx / w_t)
        head = np.hypot(dy + body_h + head_r * 0.9, dx) / head_r
        edge = np.minimum(body, head)
        mask = 1.0 / (1.0 + np.exp((edge - 1.0) / 0.08))  # soft, sub-pixel edge
        figure = fig_tone + 0.25 * fig_tex(dy, dx)  # texture attached to the figure
        gain = 1.0 + light * np.sin(2 * np.pi * t / light_period + light_phase)
        out[t] = gain * (mask * figure + (1 - mask) * background)
        x += vx
        if not body_w + 1 <= x <= width - body_w - 1:  # turn back at the edges
            vx = -vx
            x += 2 * vx
    out += rng.normal(0.0, noise, out.shape)
    video = np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
    return video.transpose(0, 2, 3, 1) if rgb else video[:, 0]


def realistic_clips(
    n: int,
    frames: int = 48,
    height: int = 32,
    width: int = 48,
    *,
    rgb: bool = True,
    first_seed: int = 0,
    scene: int | None = 0,
    figure: int | None = 0,
    **kwargs,
) -> list[np.ndarray]:
    """``n`` clips from seeds ``first_seed …``: by default one camera view and one walker (``scene``
    and ``figure`` 0), like several recordings of one person; ``None`` draws them per clip."""
    return [
        realistic_video(frames, height, width, rgb=rgb, seed=first_seed + i, scene=scene, figure=figure, **kwargs)
        for i in range(n)
    ]
