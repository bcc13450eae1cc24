"""Frozen configuration of one arm: data recipe, generator, and training knobs.

Every knob is declared once, in a ``Knob`` table, with its type, default, allowed values and a
one-line meaning. ``arms.py`` validates raw TOML against these tables and builds the frozen
dataclasses below; nothing downstream ever sees a dictionary of strings. A knob listed here must
change behaviour somewhere: a knob that silently does nothing is the worst bug this tool can have
(docs/science.md, 'Pitfalls of the original tooling').
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ARCHITECTURES = ("cnn", "fno", "hybrid", "stable_hybrid")
OUTPUT_MODES = ("real_imag", "amp_phase")
STABLE_VARIANTS = ("layerscale", "zero_gamma")
INPUT_TRANSFORMS = ("none", "sqrt", "log1p", "instancenorm")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("Default", "Exponential", "WarmupCosine", "ReduceLROnPlateau")
CLIP_ALGORITHMS = ("norm", "value", "agc")
LOSS_MODES = ("mae", "poisson")
ON_COLLAPSE = ("continue", "stop")


@dataclass(frozen=True)
class Knob:
    """Declaration of one configuration key: what it is and what values it accepts."""

    name: str
    kind: type  # int, float, bool or str; ints are accepted where floats are expected
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    exclusive_minimum: bool = False
    allow_none: bool = False  # TOML has no null: None is only ever the default

    def allowed(self) -> str:
        """Human description of the accepted values, used verbatim in error messages."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[
            self.kind
        ]

        def num(x: float) -> str:
            return str(int(x)) if self.kind is int else f"{x:g}"

        if self.minimum is not None and self.maximum is not None:
            lo = "(" if self.exclusive_minimum else "["
            return f"{kind} in {lo}{num(self.minimum)}, {num(self.maximum)}]"
        if self.minimum is not None:
            op = ">" if self.exclusive_minimum else ">="
            return f"{kind} {op} {num(self.minimum)}"
        return kind

    def check(self, value: Any) -> Any:
        """Return the value coerced to the knob's type, or raise ValueError with the reason."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"expected {self.allowed()}, got {type(value).__name__}")
            return value
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected {self.allowed()}, got {type(value).__name__}")
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected {self.allowed()}, got {type(value).__name__}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"expected a finite number, got {value}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"expected {self.allowed()}, got {type(value).__name__}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"expected {self.allowed()}")
        if self.minimum is not None:
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                raise ValueError(f"expected {self.allowed()}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"expected {self.allowed()}")
        return value


# --------------------------------------------------------------------------------------------
# Data recipe (docs/science.md, 'The grid-lines dataset'). Every field here is part of the
# dataset cache key.

DATA_KNOBS = (
    Knob("N", int, 64, "patch size in pixels (64 or 128 in the study)", minimum=8, maximum=512),
    Knob("gridsize", int, 1, "patches per sample group; only 1 is implemented", choices=(1,)),
    Knob("object_size", int, 392, "side of the full object image (px)", minimum=16, maximum=4096),
    Knob("n_lines", int, 400, "line segments drawn per object", minimum=1, maximum=100_000),
    Knob("nimgs_train", int, 2, "object images in the training split", minimum=1, maximum=64),
    Knob("nimgs_test", int, 2, "object images in the test split", minimum=1, maximum=64),
    Knob(
        "nphotons",
        float,
        1e9,
        "mean photons per diffraction pattern",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1e15,
    ),
    Knob("set_phi", bool, False, "give the object a phase derived from its amplitude"),
    Knob("train_stride", int, 4, "scan stride of the training split (px)", minimum=1, maximum=4096),
    Knob("test_stride", int, 10, "scan stride of the test split (px)", minimum=1, maximum=4096),
    Knob(
        "probe",
        str,
        "defocused_aperture",
        "'defocused_aperture' (complex, breaks the twin "
        "ambiguity), 'ideal_disk' (real and centrosymmetric: every patch is ambiguous with its "
        "twin) or a path to a complex N x N probe (.npy/.npz)",
    ),
    Knob(
        "probe_aperture",
        str,
        "circle",
        "defocused_aperture: pupil shape ('square' is the "
        "aperture of crossed Kirkpatrick-Baez mirrors)",
        choices=("circle", "square"),
    ),
    Knob(
        "probe_aperture_radius",
        float,
        10.0,
        "defocused_aperture: pupil radius (half-width "
        "for a square) in frequency pixels of the N-point DFT; the focus is ~N/(2*radius) px",
        minimum=1.0,
        maximum=256.0,
    ),
    Knob(
        "probe_defocus",
        float,
        1.0,
        "defocused_aperture: defocus in waves at the pupil edge "
        "(W = lambda * dz * radius^2 / (2 N^2 dx^2); the sign picks the side of the focus)",
        minimum=-20.0,
        maximum=20.0,
    ),
    Knob(
        "probe_astigmatism",
        float,
        0.2,
        "defocused_aperture: astigmatism in waves at the pupil edge (rho^2 cos 2 theta)",
        minimum=-2.0,
        maximum=2.0,
    ),
    Knob(
        "probe_coma",
        float,
        0.3,
        "defocused_aperture: coma in waves at the pupil edge "
        "((3 rho^3 - 2 rho) cos theta; makes |probe| asymmetric)",
        minimum=-2.0,
        maximum=2.0,
    ),
    Knob(
        "probe_smoothing_sigma",
        float,
        0.5,
        "Gaussian sigma applied to probe amplitude and unwrapped phase (0 = off)",
        minimum=0.0,
        maximum=64.0,
    ),
    Knob(
        "probe_mask_diameter",
        float,
        0.0,
        "centred disk mask on the probe, in px (0 = off)",
        minimum=0.0,
        maximum=4096.0,
    ),
    Knob(
        "probe_scale",
        float,
        4.0,
        "simulation probe normalisation divisor",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1e6,
    ),
    Knob(
        "seed",
        int,
        7,
        "data seed: objects and Poisson noise (the training seed is separate)",
        minimum=0,
        maximum=2**32 - 1,
    ),
)

# --------------------------------------------------------------------------------------------
# Generator (docs/science.md, 'Generators').

MODEL_KNOBS = (
    Knob("architecture", str, "hybrid", "generator", choices=ARCHITECTURES),
    Knob("fno_width", int, 32, "hidden width of lifter and first level", minimum=1, maximum=1024),
    Knob(
        "fno_modes",
        int,
        12,
        "Fourier modes per corner (capped per level, logged)",
        minimum=1,
        maximum=512,
    ),
    Knob("fno_blocks", int, 4, "spectral blocks = U-NO levels (depth)", minimum=1, maximum=12),
    Knob(
        "fno_cnn_blocks", int, 2, "CNN refiner blocks after the cascaded FNO", minimum=0, maximum=32
    ),
    Knob(
        "max_hidden_channels",
        int,
        0,
        "cap on hybrid channel doubling (0 = no cap)",
        minimum=0,
        maximum=65536,
    ),
    Knob("output_mode", str, "real_imag", "output head", choices=OUTPUT_MODES),
    Knob(
        "input_transform",
        str,
        "none",
        "transform applied to the diffraction input",
        choices=INPUT_TRANSFORMS,
    ),
    Knob(
        "stable_variant",
        str,
        "layerscale",
        "stable block flavour (stable_hybrid only)",
        choices=STABLE_VARIANTS,
    ),
    Knob(
        "layerscale_init",
        float,
        1e-3,
        "initial LayerScale gamma (layerscale variant)",
        minimum=0.0,
        maximum=10.0,
    ),
    Knob(
        "spectral_corners",
        int,
        2,
        "frequency corners kept by the spectral conv: 2 keeps "
        "rows [:m] and [-m:] with m <= H//2; 1 keeps rows [:m] with m <= H, the original's "
        "accidental one-corner layer (rows 12, 12, 12, 8 and 6 in the bottleneck at N=64)",
        choices=(1, 2),
    ),
    Knob(
        "spectral_impl",
        str,
        "dft",
        "spectral transform: 'dft' (truncated DFT as real "
        "matmuls, same numerics on CPU and CUDA) or 'fft' (torch.fft.rfft2/irfft2 on a "
        "zero-filled spectrum, as the original; cuFFT treats the non-Hermitian kx = 0 column "
        "differently from the CPU)",
        choices=("dft", "fft"),
    ),
)

# --------------------------------------------------------------------------------------------
# Training (docs/science.md, 'Training loop').

TRAIN_KNOBS = (
    Knob("epochs", int, 50, "training epochs", minimum=1, maximum=100_000),
    Knob("batch_size", int, 16, "training batch", minimum=1, maximum=65536),
    Knob("infer_batch_size", int, 128, "batch for the final prediction", minimum=1, maximum=65536),
    Knob(
        "val_batch_size",
        int,
        16,
        "batch for the per-epoch validation pass (each batch's loss "
        "is normalised by its own mean observation, and batch_length gain scales with it)",
        minimum=1,
        maximum=65536,
    ),
    Knob(
        "physics_gain",
        float,
        1.0,
        "factor on the predicted diffraction amplitude",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1e6,
    ),
    Knob(
        "physics_gain_mode",
        str,
        "constant",
        "'constant': gain = physics_gain; "
        "'batch_length': gain = physics_gain x samples in the batch, in training and "
        "validation (the original's accidental x16 / x2-on-the-last-batch gain)",
        choices=("constant", "batch_length"),
    ),
    Knob(
        "lr", float, 1e-3, "base learning rate", minimum=0.0, exclusive_minimum=True, maximum=10.0
    ),
    Knob("optimizer", str, "adam", "optimizer", choices=OPTIMIZERS),
    Knob("weight_decay", float, 0.0, "weight decay", minimum=0.0, maximum=10.0),
    Knob("momentum", float, 0.9, "SGD momentum (Nesterov when > 0)", minimum=0.0, maximum=1.0),
    Knob("beta1", float, 0.9, "Adam beta1", minimum=0.0, maximum=1.0),
    Knob("beta2", float, 0.999, "Adam beta2", minimum=0.0, maximum=1.0),
    Knob("scheduler", str, "Default", "per-epoch learning-rate schedule", choices=SCHEDULERS),
    Knob("warmup_epochs", int, 0, "WarmupCosine warmup epochs", minimum=0, maximum=100_000),
    Knob(
        "min_lr_ratio",
        float,
        0.1,
        "WarmupCosine floor as a fraction of lr",
        minimum=0.0,
        maximum=1.0,
    ),
    Knob(
        "exp_gamma",
        float,
        0.95,
        "Exponential decay per epoch",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
    ),
    Knob(
        "plateau_factor",
        float,
        0.5,
        "ReduceLROnPlateau cut",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
    ),
    Knob(
        "plateau_patience",
        int,
        2,
        "ReduceLROnPlateau patience (epochs)",
        minimum=0,
        maximum=100_000,
    ),
    Knob("plateau_min_lr", float, 5e-5, "ReduceLROnPlateau floor", minimum=0.0, maximum=10.0),
    Knob(
        "plateau_threshold",
        float,
        0.0,
        "ReduceLROnPlateau relative improvement threshold",
        minimum=0.0,
        maximum=1.0,
    ),
    Knob("grad_clip", float, 0.0, "clip value; 0 disables clipping", minimum=0.0, maximum=1e6),
    Knob("clip_algorithm", str, "norm", "clipping algorithm", choices=CLIP_ALGORITHMS),
    Knob(
        "grad_norm_log_freq",
        int,
        1,
        "measure the global grad norm every k steps",
        minimum=1,
        maximum=1_000_000,
    ),
    Knob("loss", str, "mae", "physics loss", choices=LOSS_MODES),
    Knob(
        "seed", int, 20260128, "training seed: weights and shuffling", minimum=0, maximum=2**32 - 1
    ),
    Knob("deterministic", bool, True, "request deterministic kernels (slower on GPU)"),
    Knob(
        "on_collapse",
        str,
        "continue",
        "what the engine does when a collapse, divergence or "
        "non-finite rule fires: keep training (the curve after collapse is evidence) or stop",
        choices=ON_COLLAPSE,
    ),
)

# --------------------------------------------------------------------------------------------
# Collapse and instability detectors (engine/scoring/detectors.py; docs/detectors.md).
# [detect] applies to every arm, [arms.<name>.detect] overrides it per arm.

DETECT_KNOBS = (
    Knob(
        "loss_spike_window",
        int,
        128,
        "steps in the rolling window of the loss-spike z-score",
        minimum=8,
        maximum=100_000,
    ),
    Knob(
        "loss_spike_warmup",
        int,
        64,
        "steps before the loss-spike rule may fire",
        minimum=2,
        maximum=1_000_000,
    ),
    Knob(
        "loss_spike_z",
        float,
        6.0,
        "rolling z-score above which a step loss is a spike",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1e6,
    ),
    Knob(
        "grad_spike_alpha",
        float,
        0.97,
        "EMA decay of the grad-norm mean and variance",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
    ),
    Knob(
        "grad_spike_warmup",
        int,
        25,
        "steps before the grad-spike rule may fire",
        minimum=1,
        maximum=1_000_000,
    ),
    Knob(
        "grad_spike_z",
        float,
        6.0,
        "EMA z-score above which a grad norm is a spike",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1e6,
    ),
    Knob(
        "spike_rearm_z",
        float,
        2.0,
        "hysteresis: a spike rule re-arms once z falls below this",
        minimum=0.0,
        maximum=1e6,
    ),
    Knob(
        "divergence_factor",
        float,
        3.0,
        "val loss above this x its best counts as diverging",
        minimum=1.0,
        exclusive_minimum=True,
        maximum=1e6,
    ),
    Knob(
        "divergence_patience",
        int,
        2,
        "epochs in a row above the factor before firing",
        minimum=1,
        maximum=100_000,
    ),
    Knob(
        "collapse_std_ratio",
        float,
        0.01,
        "predicted-amplitude std below this fraction of the target's std counts as constant output",
        minimum=0.0,
        exclusive_minimum=True,
        maximum=1.0,
    ),
    Knob(
        "collapse_patience",
        int,
        2,
        "epochs in a row below the ratio before firing",
        minimum=1,
        maximum=100_000,
    ),
    Knob(
        "plateau_patience",
        int,
        10,
        "epochs without relative val improvement before the plateau note",
        minimum=1,
        maximum=100_000,
    ),
    Knob(
        "plateau_min_delta",
        float,
        1e-4,
        "relative val improvement that resets the plateau count",
        minimum=0.0,
        maximum=1.0,
    ),
    Knob(
        "warmup_epochs",
        int,
        1,
        "epochs before the divergence and collapse rules may fire",
        minimum=0,
        maximum=100_000,
    ),
)


def _dataclass_from_knobs(cls_name: str, knobs: tuple[Knob, ...], doc: str):
    fields = [(k.name, k.kind, dataclasses.field(default=k.default)) for k in knobs]
    cls = dataclasses.make_dataclass(cls_name, fields, frozen=True)
    cls.__doc__ = doc
    cls.__module__ = __name__
    return cls


DataConfig = _dataclass_from_knobs("DataConfig", DATA_KNOBS, "Grid-lines data recipe.")
ModelConfig = _dataclass_from_knobs("ModelConfig", MODEL_KNOBS, "Generator selection and shape.")
TrainConfig = _dataclass_from_knobs("TrainConfig", TRAIN_KNOBS, "Optimisation knobs.")
DetectConfig = _dataclass_from_knobs(
    "DetectConfig", DETECT_KNOBS, "Thresholds of the collapse and instability detectors."
)


@dataclass(frozen=True)
class ArmConfig:
    """Everything one arm needs: resolved, validated, immutable."""

    name: str
    data: DataConfig  # type: ignore[valid-type]
    model: ModelConfig  # type: ignore[valid-type]
    train: TrainConfig  # type: ignore[valid-type]
    detect: DetectConfig = DetectConfig()  # type: ignore[valid-type]

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
        return cls(
            name=d["name"],
            data=DataConfig(**d["data"]),
            model=ModelConfig(**d["model"]),
            train=TrainConfig(**d["train"]),
            detect=DetectConfig(**d.get("detect", {})),
        )


KNOB_TABLES: dict[str, tuple[Knob, ...]] = {
    "data": DATA_KNOBS,
    "model": MODEL_KNOBS,
    "train": TRAIN_KNOBS,
    "detect": DETECT_KNOBS,
}


def knob_map(section: str) -> dict[str, Knob]:
    return {k.name: k for k in KNOB_TABLES[section]}


def check_all(section: str, values: dict[str, Any], on_error: Callable[[str, Any, str], None]):
    """Validate every value of a section; ``on_error(key, value, reason)`` must raise."""
    knobs = knob_map(section)
    out = {}
    for key, value in values.items():
        try:
            out[key] = knobs[key].check(value)
        except ValueError as exc:
            on_error(key, value, str(exc))
    return out
