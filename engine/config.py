"""Frozen configuration of one arm: data recipe, generator, training knobs and detector thresholds.

Every knob is a field of a plain frozen dataclass below, declared once with its type, default,
allowed values and a one-line meaning (``knob(...)``, kept in the field's metadata). Constructing a
config validates and coerces every field through ``Knob.check``, the one validator: a config that
exists is valid, however it was made (arms.toml, ``--set``, ``dataclasses.replace`` in a script).
``engine.study.arms`` checks raw TOML with the same ``Knob.check`` first, only to name the file,
arm and key in its message. docs/arms.md is generated from these fields. A knob listed here must
change behaviour somewhere: a knob that silently does nothing is the worst bug this tool can have
(docs/science.md, 'Pitfalls of the original tooling').
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from engine.knobs import Knob, Validated, knob, knobs_of

ARCHITECTURES = ("cnn", "fno", "hybrid", "stable_hybrid")
OUTPUT_MODES = ("real_imag", "amp_phase")
STABLE_VARIANTS = ("layerscale", "zero_gamma")
INPUT_TRANSFORMS = ("none", "sqrt", "log1p", "instancenorm")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("Default", "Exponential", "WarmupCosine", "ReduceLROnPlateau")
CLIP_ALGORITHMS = ("norm", "value", "agc")
LOSS_MODES = ("mae", "poisson")
ON_COLLAPSE = ("continue", "stop")
COMPILE_MODES = ("off", "default", "graphs")  # train.compile (engine/training/compiling.py)


# --------------------------------------------------------------------------------------------
# Data recipe (docs/science.md, 'The grid-lines dataset'). Every field here is part of the
# dataset cache key.


@dataclass(frozen=True)
class DataConfig(Validated):
    """Grid-lines data recipe."""

    SECTION = "data"

    N: int = knob(64, "patch size in pixels (64 or 128 in the study)", minimum=8, maximum=512)
    object_size: int = knob(392, "side of the full object image (px)", minimum=16, maximum=4096)
    n_lines: int = knob(400, "line segments drawn per object", minimum=1, maximum=100000)
    nimgs_train: int = knob(2, "object images in the training split", minimum=1, maximum=64)
    nimgs_test: int = knob(2, "object images in the test split", minimum=1, maximum=64)
    nphotons: float = knob(
        1000000000.0,
        "mean photons per diffraction pattern",
        minimum=0.0,
        maximum=1000000000000000.0,
        exclusive_minimum=True,
    )
    set_phi: bool = knob(False, "give the object a phase derived from its amplitude")
    train_stride: int = knob(4, "scan stride of the training split (px)", minimum=1, maximum=4096)
    test_stride: int = knob(10, "scan stride of the test split (px)", minimum=1, maximum=4096)
    probe: str = knob(
        "defocused_aperture",
        "'defocused_aperture' (complex, breaks the twin ambiguity), 'ideal_disk' (real and centrosymmetric: every patch is ambiguous with its twin) or a path to a complex N x N probe (.npy/.npz)",
    )
    probe_aperture: str = knob(
        "circle",
        "defocused_aperture: pupil shape ('square' is the aperture of crossed Kirkpatrick-Baez mirrors)",
        choices=("circle", "square"),
    )
    probe_aperture_radius: float = knob(
        10.0,
        "defocused_aperture: pupil radius (half-width for a square) in frequency pixels of the N-point DFT; the focus is ~N/(2*radius) px",
        minimum=1.0,
        maximum=256.0,
    )
    probe_defocus: float = knob(
        1.0,
        "defocused_aperture: defocus in waves at the pupil edge (W = lambda * dz * radius^2 / (2 N^2 dx^2); the sign picks the side of the focus)",
        minimum=-20.0,
        maximum=20.0,
    )
    probe_astigmatism: float = knob(
        0.2,
        "defocused_aperture: astigmatism in waves at the pupil edge (rho^2 cos 2 theta)",
        minimum=-2.0,
        maximum=2.0,
    )
    probe_coma: float = knob(
        0.3,
        "defocused_aperture: coma in waves at the pupil edge ((3 rho^3 - 2 rho) cos theta; makes |probe| asymmetric)",
        minimum=-2.0,
        maximum=2.0,
    )
    probe_smoothing_sigma: float = knob(
        0.5,
        "Gaussian sigma applied to probe amplitude and unwrapped phase (0 = off)",
        minimum=0.0,
        maximum=64.0,
    )
    probe_mask_diameter: float = knob(
        0.0, "centred disk mask on the probe, in px (0 = off)", minimum=0.0, maximum=4096.0
    )
    probe_scale: float = knob(
        4.0,
        "simulation probe normalisation divisor",
        minimum=0.0,
        maximum=1000000.0,
        exclusive_minimum=True,
    )
    seed: int = knob(
        7,
        "data seed: objects and Poisson noise (the training seed is separate)",
        minimum=0,
        maximum=4294967295,
    )


# --------------------------------------------------------------------------------------------
# Generator (docs/science.md, 'Generators').


@dataclass(frozen=True)
class ModelConfig(Validated):
    """Generator selection and shape."""

    SECTION = "model"

    architecture: str = knob("hybrid", "generator", choices=ARCHITECTURES)
    fno_width: int = knob(32, "hidden width of lifter and first level", minimum=1, maximum=1024)
    fno_modes: int = knob(
        12, "Fourier modes per corner (capped per level, logged)", minimum=1, maximum=512
    )
    fno_blocks: int = knob(4, "spectral blocks = U-NO levels (depth)", minimum=1, maximum=12)
    fno_cnn_blocks: int = knob(
        2, "CNN refiner blocks after the cascaded FNO", minimum=0, maximum=32
    )
    max_hidden_channels: int = knob(
        0, "cap on hybrid channel doubling (0 = no cap)", minimum=0, maximum=65536
    )
    output_mode: str = knob("real_imag", "output head", choices=OUTPUT_MODES)
    input_transform: str = knob(
        "none", "transform applied to the diffraction input", choices=INPUT_TRANSFORMS
    )
    stable_variant: str = knob(
        "layerscale", "stable block flavour (stable_hybrid only)", choices=STABLE_VARIANTS
    )
    layerscale_init: float = knob(
        0.001, "initial LayerScale gamma (layerscale variant)", minimum=0.0, maximum=10.0
    )
    spectral_corners: int = knob(
        2,
        "frequency corners kept by the spectral conv: 2 keeps rows [:m] and [-m:] with m <= H//2; 1 keeps rows [:m] with m <= H, the original's accidental one-corner layer (rows 12, 12, 12, 8 and 6 in the bottleneck at N=64)",
        choices=(1, 2),
    )
    spectral_impl: str = knob(
        "dft",
        "spectral transform: 'dft' (truncated DFT as real matmuls, same numerics on CPU and CUDA) or 'fft' (torch.fft.rfft2/irfft2 on a zero-filled spectrum, as the original; cuFFT treats the non-Hermitian kx = 0 column differently from the CPU)",
        choices=("dft", "fft"),
    )
    grad_checkpointing: str = knob(
        "off",
        "recompute each level's activations in the backward pass instead of keeping them "
        "(torch.utils.checkpoint, non-reentrant): less activation memory for one more forward "
        "per level; 'auto' turns it on for fno_blocks > 6, the depths that ran out of memory "
        "(docs/benchmarks.md, 'Gradient checkpointing')",
        choices=("off", "blocks", "auto"),
    )


# --------------------------------------------------------------------------------------------
# Training (docs/science.md, 'Training loop').


@dataclass(frozen=True)
class TrainConfig(Validated):
    """Optimisation knobs."""

    SECTION = "train"

    epochs: int = knob(50, "training epochs", minimum=1, maximum=100000)
    batch_size: int = knob(16, "training batch", minimum=1, maximum=65536)
    infer_batch_size: int = knob(128, "batch for the final prediction", minimum=1, maximum=65536)
    val_batch_size: int = knob(
        16,
        "batch for the per-epoch validation pass (each batch's loss is normalised by its own mean observation, and batch_length gain scales with it)",
        minimum=1,
        maximum=65536,
    )
    physics_gain: float = knob(
        1.0,
        "factor on the predicted diffraction amplitude",
        minimum=0.0,
        maximum=1000000.0,
        exclusive_minimum=True,
    )
    physics_gain_mode: str = knob(
        "constant",
        "'constant': gain = physics_gain; 'batch_length': gain = physics_gain x samples in the batch, in training and validation (the original's accidental x16 / x2-on-the-last-batch gain)",
        choices=("constant", "batch_length"),
    )
    lr: float = knob(0.001, "base learning rate", minimum=0.0, maximum=10.0, exclusive_minimum=True)
    optimizer: str = knob("adam", "optimizer", choices=OPTIMIZERS)
    weight_decay: float = knob(0.0, "weight decay", minimum=0.0, maximum=10.0)
    momentum: float = knob(0.9, "SGD momentum (Nesterov when > 0)", minimum=0.0, maximum=1.0)
    beta1: float = knob(0.9, "Adam beta1", minimum=0.0, maximum=1.0)
    beta2: float = knob(0.999, "Adam beta2", minimum=0.0, maximum=1.0)
    scheduler: str = knob("Default", "per-epoch learning-rate schedule", choices=SCHEDULERS)
    warmup_epochs: int = knob(0, "WarmupCosine warmup epochs", minimum=0, maximum=100000)
    min_lr_ratio: float = knob(
        0.1, "WarmupCosine floor as a fraction of lr", minimum=0.0, maximum=1.0
    )
    exp_gamma: float = knob(
        0.95, "Exponential decay per epoch", minimum=0.0, maximum=1.0, exclusive_minimum=True
    )
    plateau_factor: float = knob(
        0.5, "ReduceLROnPlateau cut", minimum=0.0, maximum=1.0, exclusive_minimum=True
    )
    plateau_patience: int = knob(
        2, "ReduceLROnPlateau patience (epochs)", minimum=0, maximum=100000
    )
    plateau_min_lr: float = knob(5e-05, "ReduceLROnPlateau floor", minimum=0.0, maximum=10.0)
    plateau_threshold: float = knob(
        0.0, "ReduceLROnPlateau relative improvement threshold", minimum=0.0, maximum=1.0
    )
    grad_clip: float = knob(0.0, "clip value; 0 disables clipping", minimum=0.0, maximum=1000000.0)
    clip_algorithm: str = knob("norm", "clipping algorithm", choices=CLIP_ALGORITHMS)
    grad_norm_log_freq: int = knob(
        1, "measure the global grad norm every k steps", minimum=1, maximum=1000000
    )
    loss: str = knob("mae", "physics loss", choices=LOSS_MODES)
    seed: int = knob(
        20260128, "training seed: weights and shuffling", minimum=0, maximum=4294967295
    )
    precision: str = knob(
        "fp32",
        "'fp32': every kernel in fp32 (TF32 off on CUDA); 'tf32': TF32 matmuls and convolutions "
        "on CUDA (refused on the CPU, where it would change nothing); 'bf16': the network body "
        "under bf16 autocast, with the spectral transforms, physics and loss kept in fp32 "
        "(validation and the final evaluation always run in fp32)",
        choices=("fp32", "tf32", "bf16"),
    )
    compile: str = knob(
        "off",
        "'off': the generator runs eagerly; 'default': torch.compile of the generator's "
        "training forward and backward (physics, loss, validation stay eager); 'graphs': the "
        "same, replayed as CUDA graphs (mode 'reduce-overhead'; refused off CUDA)",
        choices=COMPILE_MODES,
    )
    deterministic: bool = knob(True, "request deterministic kernels (slower on GPU)")
    on_collapse: str = knob(
        "continue",
        "what the engine does when a collapse, divergence or non-finite rule fires: keep training (the curve after collapse is evidence) or stop",
        choices=ON_COLLAPSE,
    )


# --------------------------------------------------------------------------------------------
# Collapse and instability detectors (engine/scoring/detectors.py; docs/detectors.md).
# [detect] applies to every arm, [arms.<name>.detect] overrides it per arm.


@dataclass(frozen=True)
class DetectConfig(Validated):
    """Thresholds of the collapse and instability detectors."""

    SECTION = "detect"

    loss_spike_window: int = knob(
        128, "steps in the rolling window of the loss-spike z-score", minimum=8, maximum=100000
    )
    loss_spike_warmup: int = knob(
        64, "steps before the loss-spike rule may fire", minimum=2, maximum=1000000
    )
    loss_spike_z: float = knob(
        6.0,
        "rolling z-score above which a step loss is a spike",
        minimum=0.0,
        maximum=1000000.0,
        exclusive_minimum=True,
    )
    grad_spike_alpha: float = knob(
        0.97,
        "EMA decay of the grad-norm mean and variance",
        minimum=0.0,
        maximum=1.0,
        exclusive_minimum=True,
    )
    grad_spike_warmup: int = knob(
        25, "steps before the grad-spike rule may fire", minimum=1, maximum=1000000
    )
    grad_spike_z: float = knob(
        6.0,
        "EMA z-score above which a grad norm is a spike",
        minimum=0.0,
        maximum=1000000.0,
        exclusive_minimum=True,
    )
    spike_rearm_z: float = knob(
        2.0,
        "hysteresis: a spike rule re-arms once z falls below this",
        minimum=0.0,
        maximum=1000000.0,
    )
    divergence_factor: float = knob(
        3.0,
        "val loss above this x its best counts as diverging",
        minimum=1.0,
        maximum=1000000.0,
        exclusive_minimum=True,
    )
    divergence_patience: int = knob(
        2, "epochs in a row above the factor before firing", minimum=1, maximum=100000
    )
    collapse_std_ratio: float = knob(
        0.01,
        "predicted-amplitude std below this fraction of the target's std counts as constant output",
        minimum=0.0,
        maximum=1.0,
        exclusive_minimum=True,
    )
    collapse_patience: int = knob(
        2, "epochs in a row below the ratio before firing", minimum=1, maximum=100000
    )
    plateau_patience: int = knob(
        10,
        "epochs without relative val improvement before the plateau note",
        minimum=1,
        maximum=100000,
    )
    plateau_min_delta: float = knob(
        0.0001, "relative val improvement that resets the plateau count", minimum=0.0, maximum=1.0
    )
    warmup_epochs: int = knob(
        1, "epochs before the divergence and collapse rules may fire", minimum=0, maximum=100000
    )


for _cls in (DataConfig, ModelConfig, TrainConfig, DetectConfig):
    _cls.KNOBS = knobs_of(_cls)

DATA_KNOBS = DataConfig.KNOBS
MODEL_KNOBS = ModelConfig.KNOBS
TRAIN_KNOBS = TrainConfig.KNOBS
DETECT_KNOBS = DetectConfig.KNOBS

# Knobs that were removed, with the only value they ever had: a config.json written before the
# removal still loads when it holds that value. (gridsize: patches per sample group; only 1 was
# ever implemented, so it changed nothing.)
RETIRED = {"data": {"gridsize": 1}}


@dataclass(frozen=True)
class ArmConfig:
    """Everything one arm needs: resolved, validated, immutable."""

    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    detect: DetectConfig = field(default_factory=DetectConfig)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "data": dataclasses.asdict(self.data),
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "detect": dataclasses.asdict(self.detect),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ArmConfig:
        """Rebuild a run's config.json; retired knobs at their only value are dropped."""

        def section(name: str, kind):
            values = dict(d.get(name) or {})
            for key, only in RETIRED.get(name, {}).items():
                if key in values and values[key] == only:
                    del values[key]
            return kind(**values)

        return cls(
            name=d["name"],
            data=section("data", DataConfig),
            model=section("model", ModelConfig),
            train=section("train", TrainConfig),
            detect=section("detect", DetectConfig),
        )


KNOB_TABLES: dict[str, tuple[Knob, ...]] = {
    "data": DATA_KNOBS,
    "model": MODEL_KNOBS,
    "train": TRAIN_KNOBS,
    "detect": DETECT_KNOBS,
}
