"""The selective scan (Mamba's S6 operator) behind one function, with three backends.

Contract (the same as ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``), for every
batch element b, group k and channel c, visiting the positions of group k in the order
``order[k]`` (the identity when ``order`` is None)::

    dt_l = softplus(delta_l + delta_bias)        (delta_l + delta_bias if not delta_softplus)
    h_l  = exp(dt_l * A) * h_{l-1} + dt_l * u_l * B_l          h before the first step = 0
    y_l  = sum_n C_l[n] * h_l[n] + D * u_l                     written at the same position

Shapes (channels last, groups are the scan directions)::

    u, delta   (batch, L, K, d)      A   (K, d, n)       D, delta_bias  (K, d)
    B, C       (batch, L, K, n)      order  (K, L) int64, a permutation of range(L) per group
    returns y  (batch, L, K, d)

Backends:

* ``fused``: a C kernel built with the package (``pose3d/csrc``), CPU only, float32 and
  float64, with a backward pass. It computes the per-step exponentials on the fly, which is
  what makes CPU inference fast.
* ``torch``: pure PyTorch, any device, autograd. A chunked parallel (Hillis-Steele) scan:
  log2(chunk) full-tensor steps inside chunks, then the same recurrence over chunk summaries.
  Its backward keeps about 15 tensors of (batch, L, K, d, n) per call: fine for inference
  and short clips, out of memory for PoseMamba-S at 243 frames (about 100 GB at batch 4).
* ``chunked``: the torch scan run over ``_RECOMPUTE_CHUNK`` positions at a time, keeping only
  the state entering each chunk; backward recomputes one chunk at a time (gradient
  checkpointing per chunk), so training memory is bounded by the inputs plus one chunk.
* ``mamba-ssm``: ``selective_scan_fn`` from mamba-ssm, CUDA only, imported lazily.

``auto`` picks ``mamba-ssm`` on CUDA when it imports (else ``chunked``, with a warning: it
is slower), ``fused`` on CPU when the kernel is built, and ``torch`` otherwise.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import math
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "chunked", "fused", "mamba-ssm")
_KERNEL_ABI = 3
_CHECKPOINT_EVERY = 64  # fused backward: steps between saved states (recomputed in between)
_TORCH_CHUNK = 64  # torch backend: positions per chunk of the parallel scan


# --------------------------------------------------------------------------- availability
@functools.lru_cache(maxsize=None)
def _fused_library() -> ctypes.CDLL | None:
    """The compiled kernel, or None (logged once) when the package was built without it."""
    spec = importlib.util.find_spec("pose3d._scan_kernel")
    if spec is None or spec.origin is None:
        log.info("fused CPU scan kernel not built; the torch scan will be used on CPU")
        return None
    lib = ctypes.CDLL(spec.origin)
    try:
        lib.pose3d_scan_args_size.restype = ctypes.c_size_t
        abi, size = lib.pose3d_scan_abi_version(), lib.pose3d_scan_args_size()
    except AttributeError:  # built before the struct's size was exported
        abi, size = None, None
    if abi != _KERNEL_ABI or size != ctypes.sizeof(_ScanArgs):
        log.warning("stale fused scan kernel at %s (ScanArgs of %s bytes, version %s; pose3d's mirror: %d bytes, "
                    "version %d); ignoring it, rebuild with pip install", spec.origin, size, abi,
                    ctypes.sizeof(_ScanArgs), _KERNEL_ABI)
        return None
    for variant in ("f32v", "f32", "f64"):
        for direction in ("forward", "backward"):
            fn = getattr(lib, f"pose3d_scan_{direction}_{variant}")
            fn.argtypes = [ctypes.POINTER(_ScanArgs)]
            fn.restype = ctypes.c_int
    return lib


@functools.lru_cache(maxsize=None)
def _mamba_selective_scan_fn():
    """mamba-ssm's selective_scan_fn, or None when mamba-ssm or its CUDA extension is missing."""
    if importlib.util.find_spec("mamba_ssm") is None:
        return None
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as exc:  # the package imports its compiled extension unconditionally
        log.info("mamba-ssm is installed but its kernel does not import: %s", exc)
        return None
    return selective_scan_fn


def available_backends(device: torch.device | str) -> list[str]:
    """Backends usable for tensors on ``device`` (without 'auto')."""
    device = torch.device(device)
    found = ["torch", "chunked"]
    if device.type == "cpu" and _fused_library() is not None:
        found.append("fused")
    if device.type == "cuda" and _mamba_selective_scan_fn() is not None:
        found.append("mamba-ssm")
    return found


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The concrete backend for ``backend`` on ``device``; ValueError when it cannot run there."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown scan backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    usable = available_backends(device)
    if backend == "auto":
        for choice in ("mamba-ssm", "fused"):
            if choice in usable:
                return choice
        if torch.device(device).type == "cuda":
            _warn_no_mamba()
            return "chunked"
        return "torch"
    if backend not in usable:
        why = {"fused": "it needs CPU tensors and the compiled kernel (reinstall pose3d with a C compiler)",
               "mamba-ssm": "it needs CUDA tensors and an importable mamba-ssm (pip install 'pose3d[gpu]')"}
        raise ValueError(f"scan backend {backend!r} is not usable on {torch.device(device)}: {why[backend]}")
    return backend


@functools.lru_cache(maxsize=None)
def _warn_no_mamba() -> None:
    log.warning("mamba-ssm is not usable here: the selective scan on CUDA falls back to the chunked "
                "PyTorch scan (memory-bounded, but slower than mamba-ssm's kernel); pip install 'pose3d[gpu]' "
                "for the CUDA kernel")


# --------------------------------------------------------------------------- public entry
def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor | None = None,
                   delta_bias: torch.Tensor | None = None, order: torch.Tensor | None = None,
                   *, delta_softplus: bool = True, backend: str = "auto") -> torch.Tensor:
    """Run the selective scan described in the module docstring; returns y like ``u``."""
    batch, L, K, d = u.shape
    n = A.shape[-1]
    if delta.shape != u.shape or A.shape != (K, d, n) or B.shape != (batch, L, K, n) or C.shape != B.shape:
        raise ValueError(f"selective_scan: inconsistent shapes u{tuple(u.shape)} delta{tuple(delta.shape)} "
                         f"A{tuple(A.shape)} B{tuple(B.shape)} C{tuple(C.shape)}")
    if order is not None and order.shape != (K, L):
        raise ValueError(f"selective_scan: order must be (K, L) = ({K}, {L}), got {tuple(order.shape)}")
    name = resolve_backend(backend, u.device)
    if name == "fused":
        return _FusedScan.apply(u, delta, A, B, C, D, delta_bias, order, delta_softplus)
    run = {"torch": _scan_torch, "chunked": _scan_chunked, "mamba-ssm": _scan_mamba}[name]
    if order is None:
        return run(u, delta, A, B, C, D, delta_bias, delta_softplus)
    groups = torch.arange(K, device=u.device)
    take = order.t()  # (L, K): sequence step i of group k reads position order[k, i]
    seq = [t[:, take, groups] for t in (u, delta, B, C)]
    y_seq = run(*seq[:2], A, *seq[2:], D, delta_bias, delta_softplus)
    return y_seq[:, torch.argsort(order, dim=1).t(), groups]


# --------------------------------------------------------------------------- torch backends
_RECOMPUTE_CHUNK = 256  # chunked backend: positions per chunk, whose states backward recomputes


def _scan_dtype(u: torch.Tensor) -> torch.dtype:
    return torch.promote_types(u.dtype, torch.float32)  # the scan runs in float32 at least


def _scan_torch(u, delta, A, B, C, D, delta_bias, delta_softplus):
    dtype = _scan_dtype(u)
    with torch.autocast(u.device.type, enabled=False):  # bf16 would lose the long recurrence
        return _scan_span(*(None if t is None else t.to(dtype) for t in (u, delta, A, B, C, D, delta_bias)),
                          delta_softplus)[0]


def _scan_span(u, delta, A, B, C, D, delta_bias, delta_softplus, h0=None):
    """The scan over positions (batch, L, ...) entering with state ``h0`` (batch, K, d, n) or
    zeros; returns (y, the state after the last position)."""
    dt = delta + delta_bias if delta_bias is not None else delta
    if delta_softplus:
        dt = F.softplus(dt)
    decay = torch.exp(dt.unsqueeze(-1) * A)  # (batch, L, K, d, n)
    drive = (dt * u).unsqueeze(-1) * B.unsqueeze(-2)
    if h0 is not None:  # h_0 = a_0 h_in + x_0: fold the entering state into the first input
        drive = torch.cat([drive[:, :1] + decay[:, :1] * h0.unsqueeze(1), drive[:, 1:]], dim=1)
    h = linear_recurrence(decay, drive)
    y = torch.einsum("blkdn,blkn->blkd", h, C)
    if D is not None:
        y = y + D * u
    return y, h[:, -1]


def _scan_chunked(u, delta, A, B, C, D, delta_bias, delta_softplus):
    dtype = _scan_dtype(u)
    with torch.autocast(u.device.type, enabled=False):
        args = [None if t is None else t.to(dtype) for t in (u, delta, A, B, C, D, delta_bias)]
        return _ChunkedScan.apply(*args, delta_softplus, _RECOMPUTE_CHUNK)


class _ChunkedScan(torch.autograd.Function):
    """:func:`_scan_span` chunk by chunk. Forward keeps only the state entering each chunk
    (batch, chunks, K, d, n); backward walks the chunks from the last, recomputes each one's
    graph from its entering state and passes the state's gradient to the chunk before."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, delta_softplus, chunk):
        batch, L, K, d = u.shape
        h = u.new_zeros(batch, K, d, A.shape[-1])
        entering, ys = [], []
        for start in range(0, L, chunk):
            part = slice(start, start + chunk)
            entering.append(h)
            y, h = _scan_span(u[:, part], delta[:, part], A, B[:, part], C[:, part], D, delta_bias,
                              delta_softplus, h)
            ys.append(y)
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, torch.stack(entering, dim=1))
        ctx.delta_softplus, ctx.chunk = delta_softplus, chunk
        return torch.cat(ys, dim=1)

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, B, C, D, delta_bias, entering = ctx.saved_tensors
        chunk, L = ctx.chunk, u.shape[1]
        per_position = [torch.empty_like(t) for t in (u, delta, B, C)]
        shared = [None if t is None else t.detach().requires_grad_() for t in (A, D, delta_bias)]
        shared_grads = [None if t is None else torch.zeros_like(t) for t in shared]
        dh = None
        for index, start in reversed(list(enumerate(range(0, L, chunk)))):
            part = slice(start, start + chunk)
            with torch.enable_grad():
                leaves = [t[:, part].detach().requires_grad_() for t in (u, delta, B, C)]
                h0 = entering[:, index].detach().requires_grad_(index > 0)
                y, h_last = _scan_span(leaves[0], leaves[1], shared[0], leaves[2], leaves[3], shared[1],
                                       shared[2], ctx.delta_softplus, h0)
                outputs, upstream = [y], [dy[:, part]]
                if dh is not None:
                    outputs.append(h_last)
                    upstream.append(dh)
                wanted = leaves + [t for t in shared if t is not None] + ([h0] if index > 0 else [])
                grads = list(torch.autograd.grad(outputs, wanted, upstream))
            for full, g in zip(per_position, grads[:4]):
                full[:, part] = g
            grads = grads[4:]
            for i, t in enumerate(shared):
                if t is not None:
                    shared_grads[i] += grads.pop(0)
            dh = grads.pop(0) if index > 0 else None
        du, ddelta, dB, dC = per_position
        dA, dD, dbias = shared_grads
        return du, ddelta, dA, dB, dC, dD, dbias, None, None


def linear_recurrence(a: torch.Tensor, x: torch.Tensor, chunk: int = _TORCH_CHUNK) -> torch.Tensor:
    """h_l = a_l * h_{l-1} + x_l along dim 1 (h before the first step = 0), in parallel.

    Only products of decays and sums appear (no division, no exp of cumulative sums), so it
    is as stable as the sequential loop.
    """
    batch, L = x.shape[:2]
    rest = x.shape[2:]
    nchunks = math.ceil(L / chunk)
    pad = nchunks * chunk - L
    if pad:  # neutral elements: decay 1, input 0
        a = torch.cat([a, a.new_ones(batch, pad, *rest)], dim=1)
        x = torch.cat([x, x.new_zeros(batch, pad, *rest)], dim=1)
    a = a.reshape(batch, nchunks, chunk, *rest)
    x = x.reshape(batch, nchunks, chunk, *rest)
    step = 1
    while step < chunk:  # Hillis-Steele inside each chunk
        x = torch.cat([x[:, :, :step], x[:, :, step:] + a[:, :, step:] * x[:, :, :-step]], dim=2)
        a = torch.cat([a[:, :, :step], a[:, :, step:] * a[:, :, :-step]], dim=2)
        step *= 2
    if nchunks > 1:  # state entering each chunk: the same recurrence over chunk summaries
        carried = linear_recurrence(a[:, :, -1], x[:, :, -1], chunk)
        entering = torch.cat([torch.zeros_like(carried[:, :1]), carried[:, :-1]], dim=1)
        x = x + a * entering.unsqueeze(2)
    return x.reshape(batch, nchunks * chunk, *rest)[:, :L]


# --------------------------------------------------------------------------- mamba-ssm backend
def _scan_mamba(u, delta, A, B, C, D, delta_bias, delta_softplus):
    fn = _mamba_selective_scan_fn()
    batch, L, K, d = u.shape
    n = A.shape[-1]

    def channels_first(t):  # (batch, L, K, c) -> (batch, K * c, L), float32 contiguous
        return t.float().permute(0, 2, 3, 1).reshape(batch, K * t.shape[-1], L).contiguous()

    y = fn(channels_first(u), channels_first(delta), A.float().reshape(K * d, n),
           B.float().permute(0, 2, 3, 1).contiguous(), C.float().permute(0, 2, 3, 1).contiguous(),
           None if D is None else D.float().reshape(-1),
           z=None,
           delta_bias=None if delta_bias is None else delta_bias.float().reshape(-1),
           delta_softplus=delta_softplus)
    return y.reshape(batch, K, d, L).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- fused backend
class _ScanArgs(ctypes.Structure):
    _fields_ = (
        [(f, ctypes.c_void_p) for f in ("u", "delta", "A", "B", "C", "D", "delta_bias", "order",
                                         "y", "hchk", "dy", "du", "ddelta", "dA", "dB", "dC",
                                         "dD", "dbias")]
        + [(f, ctypes.c_int64) for f in ("batch", "L", "K", "d", "n", "x_sb", "x_sl", "x_sk",
                                         "dl_sb", "dl_sl", "dl_sk", "B_sb", "B_sl", "B_sk",
                                         "C_sb", "C_sl", "C_sk", "chunk", "width", "unit_begin",
                                         "unit_end", "softplus")]
    )


@functools.lru_cache(maxsize=None)
def _thread_pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pose3d-scan")


def _kernel_variant(dtype: torch.dtype, d: int) -> tuple[str, int]:
    """(variant suffix, channels per work unit) for the C kernel."""
    if dtype == torch.float32 and d % 8 == 0:
        return "f32v", 16 if d % 16 == 0 else 8
    width = next(w for w in (16, 8, 4, 2, 1) if d % w == 0)
    return ("f64" if dtype == torch.float64 else "f32"), width


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _run_units(fn, args: _ScanArgs, units: int) -> None:
    """Split the work units over torch's intra-op thread count; ctypes drops the GIL."""
    workers = max(1, min(torch.get_num_threads(), units))
    bounds = [units * i // workers for i in range(workers + 1)]
    jobs = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = _ScanArgs.from_buffer_copy(args)
        part.unit_begin, part.unit_end = lo, hi
        jobs.append(part)
    if workers == 1:
        codes = [fn(ctypes.byref(jobs[0]))]
    else:
        codes = list(_thread_pool(workers).map(lambda p: fn(ctypes.byref(p)), jobs))
    if any(codes):
        raise RuntimeError(f"fused selective scan failed (codes {codes}); the state size must be <= 64")


class _FusedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, order, delta_softplus):
        lib = _fused_library()
        inputs = (u, delta, A, B, C, D, delta_bias)
        ctx.input_dtypes = [None if t is None else t.dtype for t in inputs]
        dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        # the kernel takes any strides but a unit one for channels / states
        u, A, D, delta_bias = (None if t is None else t.to(dtype).contiguous() for t in (u, A, D, delta_bias))
        delta, B, C = (t.to(dtype) if t.stride(-1) == 1 else t.to(dtype).contiguous() for t in (delta, B, C))
        order = None if order is None else order.to(torch.int64).contiguous()
        batch, L, K, d = u.shape
        n = A.shape[-1]
        variant, width = _kernel_variant(dtype, d)
        needs_grad = any(ctx.needs_input_grad[:7])
        y = torch.empty_like(u)
        hchk = u.new_empty(batch, K, math.ceil(L / _CHECKPOINT_EVERY), n, d) if needs_grad else None
        args = _ScanArgs(u=_ptr(u), delta=_ptr(delta), A=_ptr(A), B=_ptr(B), C=_ptr(C), D=_ptr(D),
                         delta_bias=_ptr(delta_bias), order=_ptr(order), y=_ptr(y), hchk=_ptr(hchk),
                         batch=batch, L=L, K=K, d=d, n=n,
                         x_sb=u.stride(0), x_sl=u.stride(1), x_sk=u.stride(2),
                         dl_sb=delta.stride(0), dl_sl=delta.stride(1), dl_sk=delta.stride(2),
                         B_sb=B.stride(0), B_sl=B.stride(1), B_sk=B.stride(2),
                         C_sb=C.stride(0), C_sl=C.stride(1), C_sk=C.stride(2),
                         chunk=_CHECKPOINT_EVERY, width=width, softplus=int(delta_softplus))
        _run_units(getattr(lib, f"pose3d_scan_forward_{variant}"), args, batch * K * (d // width))
        if needs_grad:
            ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, order, hchk)
            ctx.args, ctx.variant = args, variant
        return y

    @staticmethod
    def backward(ctx, dy):
        u, delta, A, B, C, D, delta_bias, order, hchk = ctx.saved_tensors
        args = _ScanArgs.from_buffer_copy(ctx.args)
        batch, L, K, d, n, width = args.batch, args.L, args.K, args.d, args.n, args.width
        dy = dy.to(u.dtype).contiguous()
        du, ddelta = torch.empty_like(u), torch.empty_like(u)
        dA = u.new_empty(batch, K, d, n)
        dB = u.new_empty(d // width, batch, L, K, n)
        dC = torch.empty_like(dB)
        dD = u.new_empty(batch, K, d) if D is not None else None
        dbias = u.new_empty(batch, K, d) if delta_bias is not None else None
        # every pointer is set again from the saved tensors (the same storages as in forward)
        for name, t in dict(u=u, delta=delta, A=A, B=B, C=C, D=D, delta_bias=delta_bias, order=order,
                            hchk=hchk, dy=dy, du=du, ddelta=ddelta, dA=dA, dB=dB, dC=dC, dD=dD,
                            dbias=dbias).items():
            setattr(args, name, _ptr(t))
        _run_units(getattr(_fused_library(), f"pose3d_scan_backward_{ctx.variant}"), args,
                   batch * K * (d // width))
        grads = (du, ddelta, dA.sum(0), dB.sum(0), dC.sum(0),
                 None if dD is None else dD.sum(0), None if dbias is None else dbias.sum(0))
        return (*(None if g is None else g.to(t) for g, t in zip(grads, ctx.input_dtypes)), None, None)
