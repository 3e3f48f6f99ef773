"""The PoseMamba network: sizes, shapes, gradients, backends."""

import pytest
import torch

from pose3d import scan
from pose3d.model import PRESETS, SpatioTemporalSSM, build_model, count_parameters, lengthened, widened

PUBLISHED_PARAMETERS = {"S": 1_470_211, "B": 4_742_659, "L": 9_450_499}


@pytest.mark.parametrize("preset", ["S", "B", "L"])
def test_parameter_count_matches_public_code(preset):
    count = count_parameters(build_model(preset))
    print(f"PoseMamba-{preset}: {count:,} trainable parameters (public code: {PUBLISHED_PARAMETERS[preset]:,})")
    assert abs(count - PUBLISHED_PARAMETERS[preset]) <= 0.03 * PUBLISHED_PARAMETERS[preset]


@pytest.mark.parametrize("preset", ["XS"] + [pytest.param(p, marks=pytest.mark.slow) for p in ("S", "B", "L")])
def test_random_input_gives_finite_output_at_243_frames(preset):
    model = build_model(preset).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 243, 17, 2))
    assert out.shape == (1, 243, 17, 3)
    assert torch.isfinite(out).all()


def test_any_clip_length_up_to_maximum_and_a_clear_error_beyond():
    model = build_model("S", depth=2).eval()
    with torch.inference_mode():
        for T in (1, 27, 100):
            assert model(torch.randn(2, T, 17, 2)).shape == (2, T, 17, 3)
        with pytest.raises(ValueError, match="243"):
            model(torch.randn(1, 244, 17, 2))


def tiny_layer():
    config = PRESETS["S"].__class__(dim=8, depth=1, max_frames=4)
    return SpatioTemporalSSM(config).double()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch"] + (["fused"] if scan._fused_library() else []))
def test_layer_gradients_match_finite_differences(backend):
    """gradcheck covers every path, the local reordering u[..., idx, :] included."""
    layer = tiny_layer()
    layer.scan_backend = backend
    x = torch.randn(1, 3, 17, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradient_reaches_joints_only_through_the_local_path():
    """Joint 0 feeds positions 0, 1 and 5 of the local scan; without the local term its input
    gradient through the frame-major scans changes."""
    layer = tiny_layer()
    x = torch.randn(1, 3, 17, 8, dtype=torch.float64, requires_grad=True)
    grads = {}
    for local in (True, False):
        layer.local_scan = local
        (g,) = torch.autograd.grad(layer(x).sum(), x)
        grads[local] = g
    assert not torch.allclose(grads[True][:, :, 0], grads[False][:, :, 0])


@pytest.mark.slow
@pytest.mark.skipif(not scan._fused_library(), reason="fused kernel not built")
def test_fused_and_torch_backends_agree_on_the_whole_model():
    model = build_model("S", depth=2).eval()
    x = torch.randn(2, 81, 17, 2)
    with torch.inference_mode():
        model.set_scan_backend("torch")
        expected = model(x)
        model.set_scan_backend("fused")
        actual = model(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="preset"):
        build_model("XL")


def test_training_works_after_inference_at_the_same_clip_length():
    """Nothing made under inference mode (cached index tensors) may leak into a later backward."""
    model = build_model("S", dim=8, depth=1, max_frames=9)
    x = torch.randn(1, 9, 17, 2)
    with torch.inference_mode():
        model.eval()(x)
    model.train()(x).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.slow
def test_widened_model_computes_the_same_function_and_its_copies_can_separate():
    torch.manual_seed(0)
    model = build_model("S", dim=16, depth=2, max_frames=9, drop_path=0.0).eval()
    for p in model.parameters():  # away from the initialisation, so every weight matters
        p.data.add_(0.05 * torch.randn_like(p))
    wide = widened(model, seed=1)
    assert wide.config.dim == 32 and wide.config.d_inner == 2 * model.config.d_inner
    assert wide.spatial_blocks[0].mixer.dt_rank == 2 * model.spatial_blocks[0].mixer.dt_rank
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), model(x), atol=1e-5, rtol=1e-4)
    # one gradient step: the duplicated hidden units of an MLP receive different gradients
    wide.train()(x).square().mean().backward()
    grad = wide.temporal_blocks[1].mlp.fc1.weight.grad
    half = grad.shape[0] // 2
    assert not torch.allclose(grad[:half], grad[half:], atol=1e-7)


def test_lengthened_model_stretches_the_temporal_embedding_and_keeps_the_rest():
    torch.manual_seed(0)
    model = build_model("S", dim=16, depth=1, max_frames=3, drop_path=0.0).eval()
    long = lengthened(model, 5)
    assert long.config.max_frames == 5 and not long.training
    old, new = model.temporal_pos[0].detach(), long.temporal_pos[0].detach()
    # rows 0, 2, 4 of the stretched embedding are the old rows 0, 1, 2; rows 1, 3 lie halfway
    torch.testing.assert_close(new[::2], old)
    torch.testing.assert_close(new[1::2], (old[:-1] + old[1:]) / 2)
    for name, value in model.state_dict().items():
        if name != "temporal_pos":
            assert torch.equal(long.state_dict()[name], value), name
    assert long(torch.randn(1, 5, 17, 2)).shape == (1, 5, 17, 3)
    with pytest.raises(ValueError, match="shorter"):
        lengthened(model, 2)


def test_body_features_see_the_pose_apart_from_its_place_and_size():
    from pose3d.model import body_features

    pose = torch.randn(3, 17, 2) * 0.2
    moved = pose * 2.5 + torch.tensor([0.3, -0.1])  # the same pose, larger and elsewhere
    a, b = body_features(pose), body_features(moved)
    assert a.shape == (3, 2 * 17 + 3)
    torch.testing.assert_close(a[:, :34], b[:, :34])  # the normalised shape is unchanged
    torch.testing.assert_close(b[:, 34:36], pose[:, 0] * 2.5 + torch.tensor([0.3, -0.1]))  # the root
    torch.testing.assert_close(b[:, 36], a[:, 36] * 2.5)  # and the size


def test_a_frame_lifter_network_starts_as_its_frame_lifter_and_the_blocks_then_refine_it():
    torch.manual_seed(0)
    model = build_model("XS", depth=1, max_frames=9, frame_lifter=32).eval()
    x = torch.randn(2, 9, 17, 2) * 0.2
    frames = model.forward_frames(x)
    assert frames.shape == (2, 9, 17, 3)
    assert torch.equal(model(x), frames)  # the head starts at zero
    # frame by frame: a frame's estimate does not depend on the others, and any length works
    assert torch.allclose(model.forward_frames(x[:, 4:5]), frames[:, 4:5], atol=1e-6)
    assert model.forward_frames(torch.randn(1, 30, 17, 2) * 0.2).shape == (1, 30, 17, 3)
    model.train()
    model(x).square().sum().backward()
    assert model.head[1].weight.grad.abs().sum() > 0 and model.frame_lifter.out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="cannot be widened"):
        widened(model)
    with pytest.raises(ValueError, match="needs a model with a frame lifter"):
        build_model("XS", depth=1, max_frames=9).forward_frames(x)


def test_pose_embedding_is_one_linear_map_from_the_frame_to_every_joint_and_it_trains():
    torch.manual_seed(0)
    plain = build_model("XS", depth=1, max_frames=9)
    model = build_model("XS", depth=1, max_frames=9, pose_embed=True)
    dim = model.config.dim
    assert count_parameters(model) - count_parameters(plain) == (2 * 17 + 3 + 1) * 17 * dim
    model(torch.randn(2, 9, 17, 2) * 0.2).square().sum().backward()
    assert model.pose_embed.weight.grad.abs().sum() > 0
    deep = build_model("XS", depth=1, max_frames=9, pose_embed=True, pose_embed_hidden=32)  # an MLP instead
    assert count_parameters(deep) - count_parameters(plain) == (2 * 17 + 3 + 1) * 32 + (32 + 1) * 17 * dim
    with pytest.raises(ValueError, match="cannot be widened"):
        widened(model)
