"""The selective scan backends against a plain sequential reference."""

import pytest
import torch
import torch.nn.functional as F

from pose3d import scan

fused_available = scan._fused_library() is not None
cuda_mamba = torch.cuda.is_available() and "mamba-ssm" in scan.available_backends("cuda")


def reference_scan(u, delta, A, B, C, D, delta_bias, order):
    """h_l = exp(dt_l A) h_{l-1} + dt_l u_l B_l, y_l = C_l h_l + D u_l, one step at a time."""
    batch, L, K, d = u.shape
    y = torch.zeros_like(u)
    for k in range(K):
        h = torch.zeros(batch, d, A.shape[-1], dtype=u.dtype)
        for i in range(L):
            pos = int(order[k, i])
            dt = F.softplus(delta[:, pos, k] + delta_bias[k])
            h = torch.exp(dt[..., None] * A[k]) * h + (dt * u[:, pos, k])[..., None] * B[:, pos, k, None, :]
            y[:, pos, k] = (h * C[:, pos, k, None, :]).sum(-1) + D[k] * u[:, pos, k]
    return y


def random_inputs(batch, L, K, d, n, dtype):
    inputs = dict(
        u=torch.randn(batch, L, K, d, dtype=dtype),
        delta=torch.randn(batch, L, K, d, dtype=dtype) - 1,
        A=-torch.rand(K, d, n, dtype=dtype) * 4,
        B=torch.randn(batch, L, K, n, dtype=dtype),
        C=torch.randn(batch, L, K, n, dtype=dtype),
        D=torch.randn(K, d, dtype=dtype),
        delta_bias=torch.randn(K, d, dtype=dtype) * 0.5,
    )
    for t in inputs.values():
        t.requires_grad_(True)
    order = torch.stack([torch.randperm(L) for _ in range(K)])
    return inputs, order


def outputs_and_grads(fn, inputs, order, upstream):
    y = fn(**inputs, order=order)
    grads = torch.autograd.grad(y, list(inputs.values()), upstream)
    return y, dict(zip(inputs, grads))


def assert_relative_close(actual, expected, rtol, what):
    scale = expected.abs().max().clamp_min(1e-30)
    err = ((actual - expected).abs().max() / scale).item()
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:.0e}"


BACKENDS = ["torch"] + (["fused"] if fused_available else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [pytest.param(32, marks=pytest.mark.slow), 24, 5])  # vector path (multiple of 8) and scalar path
def test_backend_matches_sequential_reference_float64(backend, d):
    inputs, order = random_inputs(batch=2, L=150, K=4, d=d, n=16, dtype=torch.float64)
    upstream = torch.randn(2, 150, 4, d, dtype=torch.float64)
    y_ref, g_ref = outputs_and_grads(reference_scan, inputs, order, upstream)
    y, g = outputs_and_grads(lambda **kw: scan.selective_scan(**kw, backend=backend), inputs, order, upstream)
    assert_relative_close(y, y_ref, 1e-6, "output")
    for name in inputs:
        assert_relative_close(g[name], g_ref[name], 1e-6, f"d{name}")


@pytest.mark.skipif(not fused_available, reason="fused kernel not built")
@pytest.mark.slow
def test_fused_float32_matches_torch_float32():
    inputs, order = random_inputs(batch=3, L=300, K=4, d=48, n=16, dtype=torch.float32)
    upstream = torch.randn(3, 300, 4, 48)
    run = {b: outputs_and_grads(lambda **kw: scan.selective_scan(**kw, backend=b), inputs, order, upstream)
           for b in ("torch", "fused")}
    assert_relative_close(run["fused"][0], run["torch"][0], 1e-5, "output")
    for name in inputs:
        assert_relative_close(run["fused"][1][name], run["torch"][1][name], 1e-5, f"d{name}")


@pytest.mark.skipif(not fused_available, reason="fused kernel not built")
def test_fused_handles_strided_inputs_and_identity_order():
    inputs, _ = random_inputs(batch=2, L=70, K=4, d=16, n=16, dtype=torch.float64)
    with torch.no_grad():
        # channels contiguous, other dimensions permuted in memory (as einsum outputs are)
        delta = inputs["delta"].permute(2, 0, 1, 3).contiguous().permute(1, 2, 0, 3)
        plain = scan.selective_scan(**{**inputs, "delta": inputs["delta"]}, backend="fused")
        strided = scan.selective_scan(**{**inputs, "delta": delta}, backend="fused")
        expected = reference_scan(**inputs, order=torch.arange(70).repeat(4, 1))
    assert_relative_close(plain, expected, 1e-12, "identity order")
    assert_relative_close(strided, expected, 1e-12, "strided delta")


def test_linear_recurrence_matches_loop():
    a, x = torch.rand(2, 333, 3, dtype=torch.float64), torch.randn(2, 333, 3, dtype=torch.float64)
    h, expected = torch.zeros(2, 3, dtype=torch.float64), []
    for i in range(333):
        h = a[:, i] * h + x[:, i]
        expected.append(h)
    torch.testing.assert_close(scan.linear_recurrence(a, x, chunk=16), torch.stack(expected, 1))


def test_unknown_or_unusable_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown scan backend"):
        scan.resolve_backend("cuda-magic", "cpu")
    with pytest.raises(ValueError, match="mamba-ssm"):
        scan.resolve_backend("mamba-ssm", "cpu")
    assert scan.resolve_backend("auto", "cpu") == ("fused" if fused_available else "torch")


@pytest.mark.skipif(not fused_available, reason="fused kernel not built")
def test_kernel_whose_struct_differs_from_the_ctypes_mirror_is_refused(monkeypatch, caplog):
    """The C kernel exports sizeof(ScanArgs); a build whose struct differs from scan.py's
    ctypes mirror (here: the mirror has a field more) is ignored with a warning."""
    import ctypes

    assert scan._fused_library().pose3d_scan_args_size() == ctypes.sizeof(scan._ScanArgs)

    class Grown(ctypes.Structure):
        _fields_ = list(scan._ScanArgs._fields_) + [("extra", ctypes.c_int64)]

    monkeypatch.setattr(scan, "_ScanArgs", Grown)
    scan._fused_library.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="pose3d.scan"):
            assert scan._fused_library() is None
        assert "stale fused scan kernel" in caplog.text and f"{ctypes.sizeof(Grown)} bytes" in caplog.text
    finally:
        monkeypatch.undo()
        scan._fused_library.cache_clear()
    assert scan._fused_library() is not None


@pytest.mark.skipif(not cuda_mamba, reason="needs CUDA and an importable mamba-ssm")
def test_mamba_ssm_kernel_matches_torch_backend_on_gpu():
    inputs, order = random_inputs(batch=2, L=500, K=4, d=64, n=16, dtype=torch.float32)
    inputs = {k: v.detach().cuda().requires_grad_(True) for k, v in inputs.items()}
    order, upstream = order.cuda(), torch.randn(2, 500, 4, 64, device="cuda")
    run = {b: outputs_and_grads(lambda **kw: scan.selective_scan(**kw, backend=b), inputs, order, upstream)
           for b in ("torch", "mamba-ssm")}
    assert_relative_close(run["mamba-ssm"][0], run["torch"][0], 1e-4, "output")
    for name in inputs:
        assert_relative_close(run["mamba-ssm"][1][name], run["torch"][1][name], 1e-3, f"d{name}")
