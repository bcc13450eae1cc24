import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from engine.scoring.evaluate import (
    Evaluation,
    evaluate,
    predict,
    reference_metrics,
    twin_reference_metrics,
)
from engine.scoring.metrics import compute_metrics
from engine.scoring.twin import twin_headline, twin_image, twin_patches
from engine.sim.stitch import count_patches_per_axis, gt_crop_bounds

N, STRIDE, P = 16, 4, 30
OBJECT_SIZE = N + (P - 1) * STRIDE  # 132 px -> 120 px stitched -> 116 px trimmed
NORM_Y_I = 2.5
GRID_POSITIONS = np.array([(i * STRIDE, j * STRIDE) for i in range(P) for j in range(P)])
IMAGE_FIELDS = ("stitched", "recon", "recon_amplitude", "recon_phase", "gt_amplitude", "gt_phase")


def complex_object(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((OBJECT_SIZE, OBJECT_SIZE))
    amplitude = 0.3 + 0.5 * (rng.random((OBJECT_SIZE, OBJECT_SIZE)) > 0.8)
    phase = 0.9 * np.sin(cols / 7.0) * np.cos(rows / 11.0)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def cut_patches(obj: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            obj[i * STRIDE : i * STRIDE + N, j * STRIDE : j * STRIDE + N]
            for i in range(P)
            for j in range(P)
        ]
    )


@dataclass
class FakeSplit:
    """Duck-typed stand-in for engine.sim.data's test Split: two objects, patch index as input."""

    diffraction: np.ndarray
    positions: np.ndarray
    norm_Y_I: float
    stride: int
    patches_per_axis: int
    amplitude: np.ndarray  # true patches / norm_Y_I
    phase: np.ndarray


class LookupModel(torch.nn.Module):
    """Returns the stored true (normalised) patch whose index the input carries in every pixel."""

    def __init__(self, patches: np.ndarray):
        super().__init__()
        self.register_buffer("patches", torch.from_numpy(patches))
        self.seen: list[int] = []
        self.calls: list[tuple[bool, bool]] = []  # (training, grad enabled) per forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = x[:, 0, 0, 0].round().long()
        self.seen.extend(index.tolist())
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.patches[index]


class SmallGenerator(torch.nn.Module):
    """Batch norm and dropout make it batch-dependent in training mode, so eval mode is tested."""

    def __init__(self):
        super().__init__()
        self.conv_in = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(4)
        self.drop = torch.nn.Dropout(0.5)
        self.conv_out = torch.nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_out(self.drop(torch.relu(self.norm(self.conv_in(x)))))
        return torch.complex(y[:, 0], y[:, 1])


@pytest.fixture(scope="module")
def scene():
    first, second = complex_object(0), complex_object(1)
    patches = np.concatenate([cut_patches(first), cut_patches(second)]) / np.float32(NORM_Y_I)
    index_image = np.arange(len(patches), dtype=np.float32)[:, None, None]
    split = FakeSplit(
        diffraction=np.broadcast_to(index_image, (len(patches), N, N)).copy(),
        positions=np.tile(GRID_POSITIONS, (2, 1)),
        norm_Y_I=NORM_Y_I,
        stride=STRIDE,
        patches_per_axis=P,
        amplitude=np.abs(patches).astype(np.float32),
        phase=np.angle(patches).astype(np.float32),
    )
    start, stop = gt_crop_bounds(OBJECT_SIZE, N, STRIDE)
    return split, patches.astype(np.complex64), first[start:stop, start:stop]


def test_fixture_geometry_matches_the_crop_arithmetic():
    assert count_patches_per_axis(OBJECT_SIZE, N, STRIDE) == P


def test_model_returning_the_true_patches_scores_a_perfect_reconstruction(scene):
    split, patches, ground_truth = scene
    result = evaluate(LookupModel(patches), split, ground_truth, 64, "cpu", phase_vacuous=False)
    np.testing.assert_allclose(result.stitched, ground_truth, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.recon, ground_truth[2:-2, 2:-2], rtol=1e-6, atol=1e-6)
    assert result.recon_amplitude.shape == result.gt_phase.shape == (116, 116)
    metrics = result.metrics
    assert metrics["phase_vacuous"] is False
    for channel in (0, 1):
        assert metrics["ssim"][channel] == pytest.approx(1.0, abs=1e-6)
        assert metrics["ms_ssim"][channel] == pytest.approx(1.0, abs=1e-6)
        assert metrics["mae"][channel] == pytest.approx(0.0, abs=1e-6)


def test_evaluate_predicts_only_the_first_image(scene):
    split, patches, ground_truth = scene
    model = LookupModel(patches)
    evaluate(model, split, ground_truth, 128, "cpu", phase_vacuous=False)
    assert sorted(model.seen) == list(range(P * P))


def test_wrong_prediction_scores_worse_than_the_truth(scene):
    split, patches, ground_truth = scene
    shuffled = patches[np.random.default_rng(0).permutation(len(patches))]
    result = evaluate(LookupModel(shuffled), split, ground_truth, 64, "cpu", phase_vacuous=False)
    assert result.metrics["ssim"][0] < 0.9
    assert result.metrics["mae"][1] > 0.05


def test_ground_truth_of_the_wrong_shape_is_rejected(scene):
    split, patches, ground_truth = scene
    with pytest.raises(ValueError, match="gt_crop_bounds"):
        evaluate(LookupModel(patches), split, ground_truth[:-1], 64, "cpu", phase_vacuous=False)


def test_split_whose_positions_are_transposed_is_rejected(scene):
    split, patches, ground_truth = scene
    transposed = dataclasses.replace(split, positions=split.positions[:, ::-1].copy())
    with pytest.raises(ValueError, match="scan order"):
        evaluate(LookupModel(patches), transposed, ground_truth, 64, "cpu", phase_vacuous=False)


def test_evaluation_images_round_trip_through_npz(scene, tmp_path):
    split, patches, ground_truth = scene
    result = evaluate(LookupModel(patches), split, ground_truth, 64, "cpu", phase_vacuous=True)
    assert result.metrics["phase_vacuous"] is True
    path = tmp_path / "recon.npz"
    result.save_npz(path)
    with np.load(path) as saved:
        for name in IMAGE_FIELDS:
            np.testing.assert_array_equal(saved[name], getattr(result, name))
        assert int(saved["trim"]) == result.trim == 2
    assert isinstance(result, Evaluation)


def test_prediction_does_not_depend_on_batch_size():
    torch.manual_seed(0)
    model = SmallGenerator()
    model.train()
    for _ in range(3):  # give batch norm non-trivial running statistics
        model(torch.randn(8, 1, N, N))
    diffraction = np.random.default_rng(0).random((10, N, N), dtype=np.float32)
    outputs = [predict(model, diffraction, size, "cpu") for size in (1, 3, 64)]
    assert outputs[0].dtype == np.complex64 and outputs[0].shape == (10, N, N)
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], rtol=1e-5, atol=1e-6)


def test_predict_runs_in_eval_mode_without_grad_and_restores_training_flags(scene):
    _, patches, _ = scene
    model = LookupModel(patches)
    model.train()
    predict(model, np.zeros((5, N, N), dtype=np.float32), 2, "cpu")
    assert model.calls == [(False, False)] * 3
    assert model.training is True

    generator = SmallGenerator()
    generator.train()
    generator.norm.eval()  # a deliberately frozen submodule must stay frozen
    predict(generator, np.zeros((2, N, N), dtype=np.float32), 2, "cpu")
    assert generator.training and generator.conv_in.training and generator.drop.training
    assert generator.norm.training is False

    generator.eval()
    predict(generator, np.zeros((2, N, N), dtype=np.float32), 2, "cpu")
    assert not any(module.training for module in generator.modules())


def test_predict_rejects_a_model_with_the_wrong_output_contract():
    real_model = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match="complex"):
        predict(real_model, np.zeros((2, N, N), dtype=np.float32), 2, "cpu")


def test_reference_metrics_are_those_of_any_flat_reconstruction(scene):
    _, _, ground_truth = scene
    reference = reference_metrics(ground_truth)
    other_flat = compute_metrics(np.full(ground_truth.shape, 0.37, np.complex64), ground_truth)
    for key in ("mae", "mse", "psnr", "ssim", "ms_ssim"):
        assert reference[key] == pytest.approx(other_flat[key], rel=1e-9)
    assert reference["ssim"][0] < 0.9
    assert reference["frc50"][0] < 2


# -- the twin ---------------------------------------------------------------------------------

PAIR_KEYS = ("mae", "mse", "ssim", "ms_ssim", "frc50", "frc1over7")


def test_a_model_that_outputs_the_twin_is_all_twin_and_perfect_against_the_twin(scene, tmp_path):
    split, patches, ground_truth = scene
    probe = np.ones((N, N), np.complex64)
    perfect = evaluate(
        LookupModel(patches), split, ground_truth, 64, "cpu", phase_vacuous=False, probe=probe
    )
    twin = evaluate(
        LookupModel(twin_patches(patches)),
        split,
        ground_truth,
        64,
        "cpu",
        phase_vacuous=False,
        probe=probe,
    )
    block = twin.metrics["twin"]
    assert block["fraction"] == 1.0 and block["undecidable_fraction"] == 0.0
    assert block["patches"] == P * P and block["d_twin"] < 1e-6 < block["d_true"]
    assert "|P|^2" in block["decision"] and block["weights"] == "probe |P|^2"
    assert "frc" not in block["metrics"]  # the curves stay in the main metrics only
    for key in PAIR_KEYS:  # scored against the twin it is the perfect reconstruction
        assert block["metrics"][key] == pytest.approx(
            perfect.metrics[key], rel=1e-5, abs=1e-6, nan_ok=True
        ), key
    assert min(block["metrics"]["psnr"]) > 100
    # ... and against the ground truth it scores exactly what an all-twin image scores
    reference = twin_reference_metrics(ground_truth, STRIDE)
    for key in PAIR_KEYS:
        assert twin.metrics[key] == pytest.approx(
            reference[key], rel=1e-4, abs=1e-6, nan_ok=True
        ), key
    assert twin.metrics["ssim"][0] < 0.9
    assert perfect.metrics["twin"]["fraction"] == 0.0
    assert perfect.metrics["twin"]["metrics"]["ssim"][0] == pytest.approx(
        reference["ssim"][0], abs=0.05
    )  # the twin scored against the object, roughly
    np.testing.assert_allclose(twin.stitched, twin.twin_gt, rtol=1e-6, atol=1e-6)
    twin.save_npz(tmp_path / "recon.npz")
    with np.load(tmp_path / "recon.npz") as saved:
        assert saved["twin_branch"].shape == (P, P) and saved["twin_branch"].all()
        assert saved["twin_decidable"].all()
        np.testing.assert_array_equal(saved["twin_gt"], twin_image(ground_truth, STRIDE))


def test_without_a_probe_the_twin_decision_is_uniform_and_says_so(scene):
    split, patches, ground_truth = scene
    half = patches.copy()
    half[: P * P // 2] = twin_patches(patches[: P * P // 2])
    result = evaluate(LookupModel(half), split, ground_truth, 64, "cpu", phase_vacuous=False)
    block = result.metrics["twin"]
    assert block["weights"] == "uniform (no probe given)" and "uniformly" in block["decision"]
    assert block["fraction"] == pytest.approx(0.5, abs=1 / (P * P))
    assert result.twin_branch[: P // 2].all() and not result.twin_branch[P // 2 + 1 :].any()


def test_twin_headline_carries_what_the_verdict_reads(scene):
    split, patches, ground_truth = scene
    result = evaluate(
        LookupModel(twin_patches(patches)), split, ground_truth, 64, "cpu", phase_vacuous=False
    )
    headline = twin_headline(result.metrics)
    assert headline["twin_fraction"] == 1.0 and headline["twin_undecidable_fraction"] == 0.0
    assert headline["ssim_vs_twin"] == result.metrics["twin"]["metrics"]["ssim"]
    assert twin_headline({"ssim": [0.5, 0.5]}) == {}  # metrics of the older evaluation code
