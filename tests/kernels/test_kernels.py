"""Fused fast paths (stzoo.kernels) against their reference twins (stzoo.models).

CPU parity in fp32 (max |Δ| ≤ 1e-4) for every architecture, several shapes and batch sizes, with
trained-like weights (non-trivial BatchNorm statistics and affine, non-trivial layer scales) and
with the shipped small weights. GPU tests (fp32, bf16, CUDA graphs on/off) run only with CUDA.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import stzoo
from stzoo.errors import ConfigError
from stzoo.kernels import FusedTrainingError, fuse, is_fused
from stzoo.kernels.elementwise import lstm_cell_update, sam_memory_update
from stzoo.kernels.tau import dilated_depthwise
from stzoo.models import build_model

TOL = 1e-4
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter and give BatchNorm / layer scales values a trained net could have."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.3)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=g) * 0.3)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.3)
        for name, p in model.named_parameters():
            if "layer_scale" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# ---- TAU ---------------------------------------------------------------------------------------
TAU_CONFIGS = [
    # first block narrows (T·hid_S = 80 > hid_T = 32): the reduction conv is folded into fc2
    dict(frames=10, hid_S=8, hid_T=32, N_S=2, N_T=3, mlp_ratio=2.0),
    # first block widens (T·hid_S = 16 < hid_T = 32): the reduction conv stays separate
    dict(frames=4, hid_S=4, hid_T=32, N_S=4, N_T=2, mlp_ratio=4.0, kernel_size=21),
    # no reduction at all, and a different attention kernel size
    dict(frames=4, hid_S=8, hid_T=32, N_S=2, N_T=2, mlp_ratio=2.0, kernel_size=13),
]


@pytest.mark.parametrize("cfg", TAU_CONFIGS)
@pytest.mark.parametrize("batch,size", [(1, (32, 32)), (3, (24, 40)), (2, (48, 48))])
def test_tau_parity_cpu(cfg, batch, size):
    ref = trained_like(build_model("tau", cfg), seed=batch)
    fused = fuse(ref)
    x = torch.rand(batch, cfg["frames"], 1, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expect = ref(x)
        got = fused(x)
    assert got.shape == expect.shape
    assert expect.abs().max() > 1e-3  # a real signal, not zeros on both sides
    assert max_diff(got, expect) <= TOL


@pytest.mark.parametrize("size,dilation,k", [((16, 16), 3, 7), ((17, 10), 3, 7), ((9, 12), 2, 5), ((8, 8), 1, 3)])
def test_dilated_depthwise_is_exact(size, dilation, k):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, *size, generator=g)
    w, b = torch.randn(6, 1, k, k, generator=g), torch.randn(6, generator=g)
    expect = F.conv2d(x, w, b, padding=dilation * (k - 1) // 2, dilation=dilation, groups=6)
    got = dilated_depthwise(x.contiguous(memory_format=torch.channels_last), w, b, dilation)
    assert got.shape == expect.shape
    assert max_diff(got, expect) <= 1e-5


# ---- recurrent models --------------------------------------------------------------------------
REC_CONFIGS = [
    ("convlstm", dict(num_layers=2, num_hidden=8, patch_size=4, filter_size=5)),
    ("convlstm", dict(num_layers=1, num_hidden=6, patch_size=2, filter_size=3, layer_norm=True)),
    ("sa_convlstm", dict(num_layers=2, num_hidden=8, patch_size=4, attn_dim=4)),  # d < C: pad Q, K
    ("sa_convlstm", dict(num_layers=2, num_hidden=4, patch_size=2, attn_dim=8)),  # d > C: pad V
]


@pytest.mark.parametrize("arch,cfg", REC_CONFIGS)
@pytest.mark.parametrize("batch,t,n_out,size", [(1, 10, 10, (32, 32)), (3, 3, 4, (16, 24)), (2, 1, 2, (8, 8))])
def test_recurrent_parity_cpu(arch, cfg, batch, t, n_out, size):
    ref = trained_like(build_model(arch, cfg), seed=t)
    fused = fuse(ref)
    assert fused.recurrent is True and fused.arch == ref.arch
    x = torch.rand(batch, t, 1, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expect = ref(x, n_out)
        got = fused(x, n_out)
        assert got.shape == expect.shape == (batch, n_out, 1, *size)
        assert max_diff(got, expect) <= TOL
        # the rest of the reference interface: context frames, teacher forcing, step / init_states
        ctx_ref, ctx_f = ref(x, 2, return_context=True), fused(x, 2, return_context=True)
        assert max_diff(ctx_f, ctx_ref) <= TOL
        target = torch.rand(batch, n_out, 1, *size)
        mask = torch.rand(batch, max(n_out - 1, 1))
        assert (
            max_diff(fused(x, n_out, target=target, teacher_mask=mask), ref(x, n_out, target=target, teacher_mask=mask))
            <= TOL
        )
        p = ref.patch_size
        s_ref = ref.init_states(batch, size[0] // p, size[1] // p, x)
        s_f = fused.init_states(batch, size[0] // p, size[1] // p, x)
        for i in range(t):
            y_ref, s_ref = ref.step(x[:, i], s_ref)
            y_f, s_f = fused.step(x[:, i], s_f)
            assert max_diff(y_f, y_ref) <= TOL
        for a, b in zip(torch.utils._pytree.tree_leaves(s_f), torch.utils._pytree.tree_leaves(s_ref)):
            assert max_diff(a, b) <= TOL


@pytest.mark.parametrize("path", ["explicit", "sdpa"])
@pytest.mark.parametrize("c,d,batch,grid", [(8, 4, 1, (6, 5)), (4, 8, 2, (7, 7)), (16, 16, 3, (4, 9))])
def test_sam_both_attention_paths_match_reference(path, c, d, batch, grid):
    """The self-attention memory alone, on each CPU attention path (stored scores / one SDPA call),
    with W_z folded into the values, against the paper-shaped reference."""
    from stzoo.kernels.sa_convlstm import FusedSelfAttentionMemory
    from stzoo.models.sa_convlstm import SelfAttentionMemory

    ref = trained_like(SelfAttentionMemory(c, d), seed=c + d)
    sam = FusedSelfAttentionMemory(ref)
    sam.explicit_max_positions = 10**9 if path == "explicit" else 0
    g = torch.Generator().manual_seed(4)
    h, m = torch.randn(batch, c, *grid, generator=g), torch.randn(batch, c, *grid, generator=g)
    with torch.no_grad():
        (h_ref, m_ref), (h_f, m_f) = ref(h, m), sam(h, m)
    assert h_ref.abs().max() > 1e-3 and m_ref.abs().max() > 1e-3
    assert max_diff(h_f, h_ref) <= 1e-5 and max_diff(m_f, m_ref) <= 1e-5


def test_sam_sdpa_path_uses_a_blocked_kernel_on_cpu():
    """On a large grid the CPU path must reach PyTorch's flash kernel, not the math fallback that
    stores the N×N scores (which happens silently when Q/K/V layouts or head sizes are off)."""
    from torch.profiler import ProfilerActivity, profile

    from stzoo.kernels.sa_convlstm import FusedSelfAttentionMemory
    from stzoo.models.sa_convlstm import SelfAttentionMemory

    sam = FusedSelfAttentionMemory(SelfAttentionMemory(16, 4).eval())
    h, m = torch.randn(1, 16, 24, 24), torch.randn(1, 16, 24, 24)
    assert 24 * 24 > sam.explicit_max_positions
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        sam(h, m)
    names = {e.key for e in prof.key_averages()}
    assert any("flash" in n for n in names), sorted(n for n in names if "attention" in n)
    assert not any("attention_math" in n for n in names)


def test_elementwise_kernels_match_formulas():
    g = torch.Generator().manual_seed(3)
    gates, c = torch.randn(2, 12, 5, 5, generator=g) * 3, torch.randn(2, 3, 5, 5, generator=g)
    i, f, gg, o = gates.chunk(4, 1)
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
    h, c_new = lstm_cell_update(gates, c)
    assert max_diff(c_new, c_ref) <= 1e-6 and max_diff(h, torch.sigmoid(o) * torch.tanh(c_ref)) <= 1e-6
    gates3, m = torch.randn(2, 9, 5, 5, generator=g) * 3, torch.randn(2, 3, 5, 5, generator=g)
    i, gg, o = gates3.chunk(3, 1)
    m_ref = (1 - torch.sigmoid(i)) * m + torch.sigmoid(i) * torch.tanh(gg)
    h, m_new = sam_memory_update(gates3, m)
    assert max_diff(m_new, m_ref) <= 1e-6 and max_diff(h, torch.sigmoid(o) * m_ref) <= 1e-6


# ---- shipped weights, through the public API ---------------------------------------------------
@pytest.mark.parametrize("name", ["tau-mmnist-s", "convlstm-mmnist-s", "sa-convlstm-mmnist-s"])
def test_shipped_weights_parity(name):
    fused, ref = stzoo.load(name), stzoo.load(name, impl="reference")
    assert (fused.impl, ref.impl) == ("fused", "reference")
    assert is_fused(fused.model) and not is_fused(ref.model)
    rng = np.random.default_rng(0)
    frames = np.zeros((2, 10, 64, 64), np.float32)
    for b in range(2):  # two bright squares moving diagonally: Moving-MNIST-like
        for t in range(10):
            y, x = 5 + 3 * t, 40 - 2 * t + b
            frames[b, t, y : y + 12, x : x + 12] = rng.uniform(0.5, 1.0)
    a, b_ = fused.predict(frames, horizon=12), ref.predict(frames, horizon=12)
    assert a.shape == b_.shape == (2, 12, 64, 64)
    assert np.abs(a - b_).max() <= TOL


def test_impl_switching_and_checkpoint_layout(tmp_path):
    p = stzoo.load("convlstm-mmnist-s", impl="auto")
    assert p.impl == "fused"
    ref_keys = set(p.reference_model.state_dict())
    assert set(p.model.state_dict()) == ref_keys  # one checkpoint serves both
    p.save_pretrained(tmp_path / "ck")
    q = stzoo.load(str(tmp_path / "ck"), impl="reference")
    assert q.impl == "reference"
    assert p.use_impl("reference") is p and p.impl == "reference"
    assert p.use_impl("fused").impl == "fused"
    with pytest.raises(ConfigError, match="impl must be one of"):
        stzoo.load("convlstm-mmnist-s", impl="fast")


def test_fused_refuses_training_and_state_loading():
    ref = build_model("tau", TAU_CONFIGS[2]).eval()
    fused = fuse(ref)
    assert not fused.training
    x = torch.rand(1, 4, 1, 16, 16)
    fused.train()
    with pytest.raises(FusedTrainingError, match="inference-only"):
        fused(x)
    with torch.no_grad():  # train mode without autograd is harmless (BN is folded anyway)
        assert fused(x).shape == x.shape
    with pytest.raises(FusedTrainingError, match="fuse"):
        fused.load_state_dict(ref.state_dict())
    rec = fuse(build_model("convlstm", dict(num_layers=1, num_hidden=4)).eval()).train()
    with pytest.raises(FusedTrainingError):
        rec.step(torch.rand(1, 1, 16, 16), rec.init_states(1, 4, 4, x))


def test_fuse_unknown_architecture():
    with pytest.raises(ConfigError, match="no fused implementation"):
        fuse(torch.nn.Linear(2, 2))


def test_every_model_runs_with_triton_unimportable():
    """The package never imports triton: make `import triton` fail and run every model, both impls."""
    code = textwrap.dedent("""
        import sys
        sys.modules["triton"] = None  # `import triton` now raises ImportError
        import torch, stzoo
        from stzoo.models import build_model
        from stzoo.kernels import fuse
        cfgs = {"tau": dict(frames=4, hid_S=4, hid_T=16, N_S=2, N_T=2, mlp_ratio=2.0),
                "convlstm": dict(num_layers=1, num_hidden=4), "sa_convlstm": dict(num_layers=1, num_hidden=4)}
        for arch, cfg in cfgs.items():
            ref = build_model(arch, cfg).eval()
            x = torch.rand(1, 4, 1, 16, 16)
            with torch.no_grad():
                for m in (ref, fuse(ref)):
                    y = m(x) if arch == "tau" else m(x, 3)
                    assert torch.isfinite(y).all()
        for name in ("tau-mmnist-s", "convlstm-mmnist-s", "sa-convlstm-mmnist-s"):
            for impl in ("reference", "fused"):
                stzoo.load(name, impl=impl).predict(torch.rand(1, 10, 1, 64, 64), horizon=2)
        assert sys.modules["triton"] is None
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


# ---- GPU (skipped without CUDA) ----------------------------------------------------------------
def _gpu_pairs():
    return [
        ("tau", TAU_CONFIGS[0], (2, 10, 1, 32, 32)),
        ("convlstm", REC_CONFIGS[0][1], (2, 4, 1, 32, 32)),
        ("sa_convlstm", REC_CONFIGS[2][1], (2, 4, 1, 32, 32)),
    ]


@pytest.fixture
def no_tf32(monkeypatch):
    """Exact fp32 on the GPU for this test (TF32 convolutions/matmuls round to 10 mantissa bits)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


@cuda
@pytest.mark.parametrize("arch,cfg,shape", _gpu_pairs())
def test_gpu_parity_fp32(arch, cfg, shape, no_tf32):
    ref = trained_like(build_model(arch, cfg)).cuda()
    fused = fuse(ref)
    x = torch.rand(*shape, device="cuda")
    with torch.no_grad():
        a, b = (ref(x), fused(x)) if arch == "tau" else (ref(x, 5), fused(x, 5))
    assert max_diff(a, b) <= TOL


@cuda
@pytest.mark.parametrize("arch,cfg,shape", _gpu_pairs())
def test_gpu_bf16_close_to_fp32_reference(arch, cfg, shape):
    """bf16 fused vs fp32 reference: max |Δ| ≤ 0.05 · (max |reference| + 1) (bf16 has 8 mantissa bits)."""
    ref = trained_like(build_model(arch, cfg)).cuda()
    fused = fuse(copy.deepcopy(ref).to(torch.bfloat16))
    x = torch.rand(*shape, device="cuda")
    with torch.no_grad():
        a = ref(x) if arch == "tau" else ref(x, 5)
        b = fused(x.bfloat16()) if arch == "tau" else fused(x.bfloat16(), 5)
    assert b.dtype == torch.bfloat16
    assert max_diff(a, b) <= 0.05 * (a.abs().max().item() + 1)


@cuda
@pytest.mark.parametrize("name", ["tau-mmnist-s", "sa-convlstm-mmnist-s"])
def test_gpu_cuda_graphs_on_off(name, no_tf32):
    on = stzoo.load(name, device="cuda", impl="fused")
    off = stzoo.load(name, device="cuda", impl="fused")
    off.cuda_graphs = False
    x = torch.rand(2, 10, 1, 64, 64)
    a, b = on.predict(x, horizon=12, layout="BTCHW"), off.predict(x, horizon=12, layout="BTCHW")
    assert max_diff(a, b) <= 1e-5
    on.predict(x, horizon=12, layout="BTCHW")  # same shapes: replays, no new capture
    assert len(on._graphed) == 1
    ref = stzoo.load(name, device="cuda", impl="reference")
    assert max_diff(a, ref.predict(x, horizon=12, layout="BTCHW")) <= TOL


@cuda
def test_gpu_jiterator_kernels():
    g = torch.Generator(device="cuda").manual_seed(0)
    gates = torch.randn(2, 16, 6, 6, device="cuda", generator=g) * 3
    c = torch.randn(2, 4, 6, 6, device="cuda", generator=g)
    h, c_new = lstm_cell_update(gates, c)
    h_cpu, c_cpu = lstm_cell_update(gates.cpu(), c.cpu())
    assert max_diff(h.cpu(), h_cpu) <= 1e-5 and max_diff(c_new.cpu(), c_cpu) <= 1e-5
    h, m_new = sam_memory_update(gates[:, :12], c)
    h_cpu, m_cpu = sam_memory_update(gates[:, :12].cpu(), c.cpu())
    assert max_diff(h.cpu(), h_cpu) <= 1e-5 and max_diff(m_new.cpu(), m_cpu) <= 1e-5


def test_auto_falls_back_to_reference_without_a_fused_twin():
    from stzoo.inference.predictor import Predictor
    from stzoo.zoo.manifest import InputSpec

    class Identity(torch.nn.Module):
        arch, recurrent = "identity", False

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.w

    spec = InputSpec.from_dict({"frames_in": 2, "frames_out": 2, "channels": 1, "height": 8, "width": 8})
    p = Predictor(Identity(), spec).use_impl("auto")
    assert p.impl == "reference"
    with pytest.raises(ConfigError, match="no fused implementation"):
        p.use_impl("fused")


@pytest.mark.parametrize("arch,cfg", [("tau", TAU_CONFIGS[1]), REC_CONFIGS[0], REC_CONFIGS[2]])
def test_bf16_fused_close_to_fp32_reference_cpu(arch, cfg):
    """16-bit storage: folding happens in fp32; the result stays within bf16 rounding of fp32."""
    ref = trained_like(build_model(arch, cfg))
    fused = fuse(copy.deepcopy(ref).to(torch.bfloat16))
    assert next(fused.parameters()).dtype == torch.bfloat16
    x = torch.rand(2, cfg.get("frames", 4), 1, 16, 16)
    with torch.no_grad():
        a = ref(x) if arch == "tau" else ref(x, 3)
        b = fused(x.bfloat16()) if arch == "tau" else fused(x.bfloat16(), 3)
    assert b.dtype == torch.bfloat16
    assert max_diff(a, b) <= 0.05 * (a.abs().max().item() + 1)
