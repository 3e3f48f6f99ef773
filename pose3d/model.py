"""PoseMamba: a bidirectional global-local spatio-temporal state space model that lifts 2D
keypoint sequences to 3D (Huang et al., arXiv 2408.03540), written from the paper's
description (see docs/model.md).

Input (B, T, 17, 2): normalised 2D keypoints (``pose3d.codec``), Human3.6M-17 order.
Output (B, T, 17, 3): root-relative 3D in the same normalised units (x, y along the image,
z depth), which the codec turns into metres.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .scan import BACKENDS, selective_scan
from .skeleton import LOCAL_SCAN_ORDER, NUM_JOINTS

NUM_DIRECTIONS = 4  # global+local frame-major, joint-major, and both reversed


@dataclass(frozen=True)
class PoseMambaConfig:
    dim: int = 64
    depth: int = 10            # pairs of (spatial, temporal) blocks
    max_frames: int = 243      # longest clip; the temporal position embedding has this many rows
    num_joints: int = NUM_JOINTS
    d_state: int = 16
    ssm_ratio: float = 2.0     # d_inner = ssm_ratio * dim
    mlp_ratio: float = 2.0
    drop_path: float = 0.2     # rises linearly from 0 over the block pairs
    local_scan: bool = True    # add u[..., LOCAL_SCAN_ORDER, :] to the frame-major scans
    pose_embed: bool = False   # also embed each joint from its whole frame's pose (body_features)
    pose_embed_hidden: int = 0  # > 0: that pose embedding is an MLP with this hidden width
    frame_lifter: int = 0      # > 0: a single-frame lifter this wide under the blocks (FrameLifter)

    @property
    def d_inner(self) -> int:
        return int(self.ssm_ratio * self.dim)


# Published configurations: S 1,470,211, B 4,742,659, L 9,450,499 trainable parameters.
# XS is this project's own: a quarter of S's width and half its depth, small enough to train
# and run fast on a laptop CPU (docs/model.md).
PRESETS: dict[str, PoseMambaConfig] = {
    "XS": PoseMambaConfig(dim=32, depth=5),
    "S": PoseMambaConfig(dim=64, depth=10),
    "B": PoseMambaConfig(dim=128, depth=10),
    "L": PoseMambaConfig(dim=128, depth=20),
}


def preset_config(preset: str) -> PoseMambaConfig:
    """The configuration of ``preset`` ('XS', 'S', 'B' or 'L', any case); ValueError otherwise."""
    if not isinstance(preset, str) or preset.upper() not in PRESETS:
        raise ValueError(f"unknown PoseMamba preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset.upper()]


def build_model(preset: str = "S", **overrides) -> "PoseMamba":
    """A PoseMamba network for ``preset`` ('XS', 'S', 'B' or 'L'); keyword overrides change any field
    of :class:`PoseMambaConfig`, and ``scan_backend`` picks the selective scan backend."""
    scan_backend = overrides.pop("scan_backend", "auto")
    config = PoseMambaConfig(**{**asdict(preset_config(preset)), **overrides})
    return PoseMamba(config, scan_backend=scan_backend)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class SpatioTemporalSSM(nn.Module):
    """The bidirectional global-local spatio-temporal selective state space layer.

    On x (B, T, J, dim): in_proj -> (u, z); u -> depthwise 3x3 conv over (T, J) -> SiLU;
    four scans over the L = T * J tokens, each with its own S6 parameters:
    0 frame-major over u + u[local order], 1 joint-major over u, 2 and 3 the same reversed;
    the four outputs, back in grid order, are summed, normalised, gated by SiLU(z), projected.
    """

    def __init__(self, config: PoseMambaConfig):
        super().__init__()
        dim, d_inner, d_state = config.dim, config.d_inner, config.d_state
        self.d_state = d_state
        self.dt_rank = math.ceil(dim / 16)
        self.local_scan = config.local_scan
        self.scan_backend = "auto"
        K = NUM_DIRECTIONS

        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)
        self.conv = nn.Conv2d(d_inner, d_inner, kernel_size=3, padding=1, groups=d_inner)
        bound = d_inner ** -0.5  # nn.Linear's default initialisation, per direction
        self.x_proj_weight = nn.Parameter(torch.empty(K, self.dt_rank + 2 * d_state, d_inner).uniform_(-bound, bound))
        self.dt_proj_weight = nn.Parameter(torch.empty(K, d_inner, self.dt_rank).uniform_(-self.dt_rank ** -0.5, self.dt_rank ** -0.5))
        # dt starts log-uniform in [0.001, 0.1]; the bias holds softplus^-1 of it
        dt = torch.exp(torch.empty(K, d_inner).uniform_(math.log(1e-3), math.log(1e-1))).clamp(min=1e-4)
        self.dt_proj_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        # S4D-real initialisation: A = -(1, 2, ..., d_state) for every channel
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(K, d_inner, 1))
        self.D = nn.Parameter(torch.ones(K, d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)
        self.register_buffer("local_order", torch.tensor(LOCAL_SCAN_ORDER), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, J, _ = x.shape
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv(u.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)  # (B, T, J, d_inner)
        u_global_local = u + u[:, :, self.local_order] if self.local_scan else u
        xs = torch.stack([u_global_local, u, u_global_local, u], dim=2)  # (B, T, K, J, d)
        xs = xs.transpose(2, 3).reshape(B, T * J, NUM_DIRECTIONS, -1)  # grid (frame-major) order
        x_dbl = torch.einsum("bnkd,kcd->bnkc", xs, self.x_proj_weight)
        dt_low, Bs, Cs = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = torch.einsum("bnkr,kdr->bnkd", dt_low, self.dt_proj_weight)
        y = selective_scan(xs, delta, -torch.exp(self.A_log.float()), Bs, Cs, self.D.float(),
                           self.dt_proj_bias.float(), scan_orders(T, J, x.device),
                           backend=self.scan_backend)
        y = self.out_norm(y.sum(dim=2).to(x.dtype)).reshape(B, T, J, -1) * F.silu(z)
        return self.out_proj(y)


def scan_orders(T: int, J: int, device: torch.device) -> torch.Tensor:
    """(4, T * J) grid positions visited by the four scan directions, grid = frame-major.

    Not cached: a tensor made under inference mode cannot be saved for a later backward."""
    frame_major = torch.arange(T * J, device=device)
    joint_major = frame_major.reshape(T, J).t().reshape(-1)
    return torch.stack([frame_major, joint_major, frame_major.flip(0), joint_major.flip(0)])


def pose_size(keypoints_2d: torch.Tensor) -> torch.Tensor:
    """(..., J, 2) -> (..., 1, 1): the root-mean-square distance of the joints from the root (joint 0)."""
    relative = keypoints_2d - keypoints_2d[..., :1, :]
    return relative.square().sum(dim=-1, keepdim=True).mean(dim=-2, keepdim=True).sqrt().clamp_min(1e-6)


def body_features(keypoints_2d: torch.Tensor) -> torch.Tensor:
    """(..., J, 2) normalised 2D -> (..., 2 J + 3): the frame's pose as one vector, root-relative
    and divided by its size (``pose_size``), then the root's position and that size, so the
    whole body reaches every joint's token at once."""
    root = keypoints_2d[..., :1, :]
    size = pose_size(keypoints_2d)
    return torch.cat([((keypoints_2d - root) / size).flatten(-2), root[..., 0, :], size[..., 0, :1]], dim=-1)


class FrameLifter(nn.Module):
    """A single-frame lifter (Martinez et al. 2017: Linear, two residual blocks of two Linear +
    norm + ReLU + dropout) from ``body_features`` to every joint's root-relative 3D in units of
    the 2D pose's size, so that its targets do not change with the person's distance. Layer
    norm, not Martinez's batch norm: it learned as fast (docs/training.md), and a batch of
    clips, whose frames are alike, would skew batch statistics when the whole network trains.

    (..., J, 2) normalised 2D -> (..., J, 3) root-relative model units. In PoseMamba it is the
    frame-by-frame estimate that the blocks refine with the clip's context; trained first on
    single frames (``TrainConfig.objective = "frames"``) it learns as fast per CPU-minute as the
    MLP reference (docs/training.md)."""

    def __init__(self, num_joints: int, width: int, dropout: float = 0.5, blocks: int = 2):
        super().__init__()
        def layer(inputs: int) -> list[nn.Module]:
            return [nn.Linear(inputs, width), nn.LayerNorm(width), nn.ReLU(), nn.Dropout(dropout)]
        self.num_joints = num_joints
        self.stem = nn.Sequential(*layer(2 * num_joints + 3))
        self.blocks = nn.ModuleList(nn.Sequential(*layer(width), *layer(width)) for _ in range(blocks))
        self.out = nn.Linear(width, 3 * num_joints)

    def forward(self, keypoints_2d: torch.Tensor) -> torch.Tensor:
        h = self.stem(body_features(keypoints_2d))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h).unflatten(-1, (-1, 3)) * pose_size(keypoints_2d)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, config: PoseMambaConfig, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim)
        self.mixer = SpatioTemporalSSM(config)
        self.norm2 = nn.LayerNorm(config.dim)
        self.mlp = Mlp(config.dim, int(config.dim * config.mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PoseMamba(nn.Module):
    def __init__(self, config: PoseMambaConfig, scan_backend: str = "auto"):
        super().__init__()
        self.config = config
        dim = config.dim
        self.joint_embed = nn.Linear(2, dim)
        # a joint's embedding from the whole frame's pose: what a single-frame lifter sees at once
        self.pose_embed = _pose_embedding(config) if config.pose_embed else None
        if config.frame_lifter:  # its estimate is refined by the blocks and embeds every joint's 3D guess
            self.frame_lifter = FrameLifter(config.num_joints, config.frame_lifter)
            self.frame_embed = nn.Linear(3, dim)
        else:
            self.frame_lifter = None
        self.spatial_pos = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, config.num_joints, dim), std=0.02))
        self.temporal_pos = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, config.max_frames, dim), std=0.02))
        rates = torch.linspace(0, config.drop_path, config.depth).tolist()
        self.spatial_blocks = nn.ModuleList(Block(config, p) for p in rates)
        self.temporal_blocks = nn.ModuleList(Block(config, p) for p in rates)
        self.spatial_norm = nn.LayerNorm(dim)
        self.temporal_norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))
        self.apply(_init_linear)
        if self.frame_lifter is not None:  # at the start the network is the frame lifter, exactly
            nn.init.zeros_(self.head[1].weight)
        self.set_scan_backend(scan_backend)

    def set_scan_backend(self, backend: str) -> None:
        """'auto', 'torch', 'fused' or 'mamba-ssm' for every SSM layer (see pose3d.scan)."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown scan backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        for module in self.modules():
            if isinstance(module, SpatioTemporalSSM):
                module.scan_backend = backend

    def _check_input(self, keypoints_2d: torch.Tensor, any_length: bool = False) -> None:
        B, T, J, C = keypoints_2d.shape
        if (T > self.config.max_frames and not any_length) or J != self.config.num_joints or C != 2:
            raise ValueError(f"PoseMamba expects (B, T<={self.config.max_frames}, {self.config.num_joints}, 2), "
                             f"got {tuple(keypoints_2d.shape)}")

    def forward(self, keypoints_2d: torch.Tensor) -> torch.Tensor:
        self._check_input(keypoints_2d)
        B, T, J, _ = keypoints_2d.shape
        x = self.joint_embed(keypoints_2d) + self.spatial_pos
        if self.pose_embed is not None:
            x = x + self.pose_embed(body_features(keypoints_2d)).reshape(B, T, J, -1)
        if self.frame_lifter is not None:
            frame_pose = self.frame_lifter(keypoints_2d)
            x = x + self.frame_embed(frame_pose / pose_size(keypoints_2d))  # in units of the 2D pose's size
        for i, (spatial, temporal) in enumerate(zip(self.spatial_blocks, self.temporal_blocks)):
            x = self.spatial_norm(spatial(x))
            if i == 0:
                x = x + self.temporal_pos[:, :T, None, :]
            x = self.temporal_norm(temporal(x))
        return self.head(x) if self.frame_lifter is None else frame_pose + self.head(x)

    def forward_frames(self, keypoints_2d: torch.Tensor) -> torch.Tensor:
        """The frame lifter's estimate alone, (B, T, J, 2) -> (B, T, J, 3), without the blocks:
        what the network outputs while its head is still zero, at a fraction of the cost, so
        the lifter can be trained first on single frames (TrainConfig.objective = "frames")."""
        if self.frame_lifter is None:
            raise ValueError("forward_frames needs a model with a frame lifter (frame_lifter > 0)")
        self._check_input(keypoints_2d, any_length=True)
        return self.frame_lifter(keypoints_2d)


def _pose_embedding(config: PoseMambaConfig) -> nn.Module:
    """body_features (2 J + 3) -> J * dim: one linear map, or an MLP with ``pose_embed_hidden`` units."""
    features, out = 2 * config.num_joints + 3, config.num_joints * config.dim
    if not config.pose_embed_hidden:
        return nn.Linear(features, out)
    return nn.Sequential(nn.Linear(features, config.pose_embed_hidden), nn.GELU(),
                         nn.Linear(config.pose_embed_hidden, out))


def _init_linear(module: nn.Module) -> None:
    """Truncated-normal Linear weights and zero biases, as in MotionBERT-style models; the SSM's
    own projections keep the Mamba initialisation set in SpatioTemporalSSM."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _resized(model: PoseMamba, **changes) -> PoseMamba:
    """A fresh PoseMamba with ``model``'s configuration and scan backend, ``changes`` applied."""
    return PoseMamba(PoseMambaConfig(**{**asdict(model.config), **changes}),
                     scan_backend=model.spatial_blocks[0].mixer.scan_backend)


def widened(model: PoseMamba, noise: float = 1e-3, seed: int = 0) -> PoseMamba:
    """A copy of ``model`` twice as wide (dim, d_inner and the MLP's hidden width doubled) that
    computes the same function, so a larger network can continue from a trained smaller one
    (Net2WiderNet, Chen et al. 2016).

    Every channel is duplicated. A weight reading duplicated channels is split in two,
    w/2 + e and w/2 - e: the sum, hence the output, is unchanged, and the random e gives the
    two copies different gradients so that training can pull them apart. LayerNorm over
    duplicated channels sees the same mean and variance. The SSM's low-rank dt projection
    gains ranks whose input rows start at zero."""
    c = model.config
    if c.pose_embed or c.frame_lifter:
        raise ValueError("widened: a model with pose_embed or frame_lifter cannot be widened (its embedding is per joint)")
    device = next(model.parameters()).device
    wide = _resized(model, dim=2 * c.dim).to(device)
    fresh = wide.state_dict()
    generator = torch.Generator(device).manual_seed(seed)  # the noise is made where the weights are

    def tile(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
        return torch.cat([t, t], dim=dim)

    def split_inputs(t: torch.Tensor, dim: int = -1) -> torch.Tensor:
        e = noise * t.abs().mean() * torch.randn(t.shape, generator=generator, device=device, dtype=t.dtype)
        return torch.cat([t / 2 + e, t / 2 - e], dim=dim)

    state = {}
    for name, t in model.state_dict().items():
        leaf = name.split(".")[-1]
        if name.endswith("in_proj.weight"):  # rows: u then z, each duplicated
            u, z = t.chunk(2, dim=0)
            state[name] = split_inputs(torch.cat([u, u, z, z]))
        elif leaf == "x_proj_weight":  # (K, dt_rank + 2 d_state, d_inner)
            rank = model.spatial_blocks[0].mixer.dt_rank
            extra = wide.spatial_blocks[0].mixer.dt_rank - rank
            t = split_inputs(t)
            state[name] = torch.cat([t[:, :rank], t.new_zeros(t.shape[0], extra, t.shape[2]), t[:, rank:]], dim=1)
        elif leaf == "dt_proj_weight":  # (K, d_inner, dt_rank): the new ranks read zeros
            state[name] = torch.cat([tile(t, 1), fresh[name][:, :, t.shape[2]:]], dim=2)
        elif leaf in ("dt_proj_bias", "D", "A_log"):  # (K, d_inner, ...)
            state[name] = tile(t, 1)
        elif name in ("spatial_pos", "temporal_pos"):
            state[name] = tile(t, -1)
        elif name == "head.1.weight":  # (3, dim): reads duplicated channels, writes x, y, z
            state[name] = split_inputs(t)
        elif name == "head.1.bias":
            state[name] = t
        elif t.dim() == 2 and name != "joint_embed.weight":  # Linear (out, in): both sides duplicated
            state[name] = split_inputs(tile(t))
        else:  # per-channel vectors, the embedding (dim, 2) and the depthwise conv (d_inner, 1, 3, 3)
            state[name] = tile(t)
    wide.load_state_dict(state)
    return wide.train(model.training)


def lengthened(model: PoseMamba, max_frames: int) -> PoseMamba:
    """A copy of ``model`` that takes clips up to ``max_frames`` long, for fine-tuning a model
    trained on short clips at a longer one: the temporal position embedding is stretched by
    linear interpolation, first and last rows kept (the scan itself has no fixed length)."""
    c = model.config
    if max_frames < c.max_frames:
        raise ValueError(f"lengthened: {max_frames} frames is shorter than the model's {c.max_frames}")
    long = _resized(model, max_frames=max_frames)
    state = model.state_dict()
    rows = state["temporal_pos"].transpose(1, 2)  # (1, dim, frames): interpolate along frames
    state["temporal_pos"] = F.interpolate(rows, size=max_frames, mode="linear", align_corners=True).transpose(1, 2)
    long.load_state_dict(state)
    return long.train(model.training)
