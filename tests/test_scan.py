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


@pytest.mark.parametrize("chunk", [32, 150, 1000])  # several chunks with a short last one, one, a partial one
def test_chunked_matches_sequential_reference_float64(monkeypatch, chunk):
    monkeypatch.setattr(scan, "_RECOMPUTE_CHUNK", chunk)
    inputs, order = random_inputs(batch=2, L=150, K=4, d=8, n=16, dtype=torch.float64)
    upstream = torch.randn(2, 150, 4, 8, dtype=torch.float64)
    y_ref, g_ref = outputs_and_grads(reference_scan, inputs, order, upstream)
    y, g = outputs_and_grads(lambda **kw: scan.selective_scan(**kw, backend="chunked"), inputs, order, upstream)
    assert_relative_close(y, y_ref, 1e-6, "output")
    for name in inputs:
        assert_relative_close(g[name], g_ref[name], 1e-6, f"d{name}")


def test_chunked_passes_gradcheck(monkeypatch):
    monkeypatch.setattr(scan, "_RECOMPUTE_CHUNK", 3)
    inputs, order = random_inputs(batch=1, L=7, K=2, d=2, n=3, dtype=torch.float64)
    names = list(inputs)
    assert torch.autograd.gradcheck(
        lambda *ts: scan.selective_scan(**dict(zip(names, ts)), order=order, backend="chunked"),
        tuple(inputs.values()))


def test_chunked_without_D_and_bias_matches_torch(monkeypatch):
    monkeypatch.setattr(scan, "_RECOMPUTE_CHUNK", 16)
    inputs, _ = random_inputs(batch=2, L=40, K=2, d=4, n=8, dtype=torch.float64)
    inputs = {k: v for k, v in inputs.items() if k not in ("D", "delta_bias")}
    upstream = torch.randn(2, 40, 2, 4, dtype=torch.float64)
    run = {b: outputs_and_grads(lambda **kw: scan.selective_scan(**kw, delta_softplus=False, backend=b),
                                inputs, None, upstream) for b in ("torch", "chunked")}
    assert_relative_close(run["chunked"][0], run["torch"][0], 1e-9, "output")
    for name in inputs:
        assert_relative_close(run["chunked"][1][name], run["torch"][1][name], 1e-9, f"d{name}")


def _bytes_saved_for_backward(backend: str, L: int) -> int:
    """Bytes of the distinct storages autograd keeps for backward across one scan call."""
    inputs, order = random_inputs(batch=2, L=L, K=4, d=16, n=16, dtype=torch.float32)
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        scan.selective_scan(**inputs, order=order, backend=backend)
    return sum(storages.values())


def test_chunked_backward_keeps_inputs_and_chunk_states_only(monkeypatch):
    monkeypatch.setattr(scan, "_RECOMPUTE_CHUNK", 64)
    L, batch, K, d, n = 1024, 2, 4, 16, 16
    state = batch * L * K * d * n * 4  # bytes of one (batch, L, K, d, n) float32 tensor
    chunked, plain = _bytes_saved_for_backward("chunked", L), _bytes_saved_for_backward("torch", L)
    # inputs (u, delta: batch*L*K*d each; B, C: batch*L*K*n) and one state per chunk
    inputs = batch * L * K * (2 * d + 2 * n) * 4
    assert chunked <= 2 * inputs + 2 * batch * (L // 64) * K * d * n * 4, (chunked, inputs)
    assert plain > 5 * state  # what the chunked scan avoids: full-length state tensors
    assert chunked < state


def test_auto_on_cuda_without_mamba_ssm_warns_and_bounds_memory(monkeypatch, caplog):
    monkeypatch.setattr(scan, "_mamba_selective_scan_fn", lambda: None)
    scan._warn_no_mamba.cache_clear()
    with caplog.at_level("WARNING", logger="pose3d.scan"):
        assert scan.resolve_backend("auto", "cuda") == "chunked"
        assert scan.resolve_backend("auto", "cuda") == "chunked"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "mamba-ssm" in warnings[0].getMessage()  # once per process
    scan._warn_no_mamba.cache_clear()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_chunked_matches_torch_on_gpu_under_bf16_autocast():
    inputs, order = random_inputs(batch=2, L=700, K=4, d=32, n=16, dtype=torch.float32)
    inputs = {k: v.detach().cuda().requires_grad_() for k, v in inputs.items()}
    upstream = torch.randn(2, 700, 4, 32, device="cuda")
    run = {}
    for b in ("torch", "chunked"):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            run[b] = outputs_and_grads(lambda **kw: scan.selective_scan(**kw, backend=b), inputs,
                                       order.cuda(), upstream)
    assert run["chunked"][0].dtype == torch.float32  # the scan itself stays in float32
    assert_relative_close(run["chunked"][0], run["torch"][0], 1e-4, "output")
    for name in inputs:
        assert_relative_close(run["chunked"][1][name], run["torch"][1][name], 1e-3, f"d{name}")
