"""The telemetry header record's declaration: the first record of a run and its nested objects.

It is the longest record kind (everything the engine reads back about the run it is about to
train), so it has its own module; engine/runs/schema.py gathers it with the other kinds.
"""

from __future__ import annotations

from engine.runs.schema_types import SCHEMA, T_FIELD, Field, RecordKind

HEADER = RecordKind(
    "header",
    "the first record of a run",
    (
        Field("schema", "string", f'`"{SCHEMA}"`'),
        Field("arm", "string", "arm name"),
        Field(
            "config",
            "object",
            "the resolved arm config (`data`, `model`, `train`), exactly as trained",
        ),
        Field(
            "model",
            "object",
            "read back from the live model: architecture, `parameters` (real-counted), "
            "`parameters_complex_as_one`, `parameters_by_module`, `channels`, `spectral_modes` "
            "(one entry per spectral layer: `module`, `size`, `in`, `out`, `rows_per_corner`, "
            '`cols`, `corners`, `impl` = `"dft"` or `"fft"`), `bottleneck_modes`, '
            "`spectral_mode_cap`, `spectral_init`, `fft_norm`, `stable_variant`, "
            "`layerscale_init`, `output_mode`, `input_transform`, `memory_format`, `knobs_used` "
            "(the model knobs the builder actually read). Conventions: "
            "[science.md](science.md#spectral-convolution)",
        ),
        Field("parameters", "integer", "copy of `model.parameters`"),
        Field("channel_schedule", "array|null", "copy of `model.channels`"),
        Field(
            "optimizer",
            "object",
            "read back from the live optimizer: `class`, `lr`, `betas`, `momentum`, `nesterov`, "
            "`weight_decay`, ...",
        ),
        Field(
            "scheduler",
            "object",
            "name, base lr, and its knobs (warmup, floor ratio, gamma, plateau settings); always "
            '"stepped per epoch, after validation"',
        ),
        Field("clip", "object", "`enabled`, `algorithm`, `value`, and what the grad norm measures"),
        Field("physics", "object", "the forward model and loss as trained (below)"),
        Field(
            "dataset",
            "object",
            "`recipe_hash`, `recipe`, `cache`, `probe` (below), `sizes`, `gt_phase_std`, "
            "`phase_vacuous`, `intensity_scale`, `norm_Y_I` per split, `photons_per_pattern` "
            "(requested, expected and drawn per split), `build_seconds`, `data_format_version`",
        ),
        Field("n_train", "integer", "training patterns", unit="patterns"),
        Field("n_test", "integer", "test (validation) patterns", unit="patterns"),
        Field("steps_per_epoch", "integer", "optimizer steps per epoch", unit="steps"),
        Field(
            "target_amp_std",
            "number",
            "the mean per-patch std of the ground-truth amplitude on the first 64 test patches, "
            "divided by the physics gain of a full training batch (1 by default; under a gain g "
            "a healthy generator outputs object / g): the reference of the output-collapse rule",
            unit="normalised amplitude",
        ),
        Field(
            "seeding", "object", "training seed, deterministic-algorithm flag, cuDNN benchmark flag"
        ),
        Field(
            "precision",
            "object",
            "`mode` (fp32, tf32 or bf16), `autocast` (the autocast dtype, null when none), "
            "`tf32_matmul` and `tf32_cudnn` as set (null on the CPU) and `kept_fp32` (what bf16 "
            "leaves in fp32); docs/benchmarks.md, 'Precision modes'",
            since="precision modes",
        ),
        Field(
            "compile",
            "object",
            "what `train.compile` did: `mode` (off, default or graphs), `torch_mode` "
            "(torch.compile's mode, null when off), `backend`, `cuda_graphs`, `compiled` (what "
            "runs compiled) and `eager` (what always runs eagerly); docs/benchmarks.md, "
            "'torch.compile'",
            since="compile knob",
        ),
        Field(
            "device",
            "object",
            "where it ran; on CUDA also the GPU, the CUDA version and whether TF32 may be used by "
            "matmuls (`tf32_matmul`) and cuDNN convolutions (`tf32_cudnn`), which changes fp32 "
            "results at the 1e-4 level (measured in docs/benchmarks.md)",
        ),
        Field(
            "queue",
            "object|null",
            "null for an engine started without the device queue; else `device`, `slot`, "
            "`max_parallel`, `devices` (those it could have used) and `waited_s`",
        ),
        Field("torch", "string", "torch version"),
        Field("numpy", "string", "numpy version"),
        Field("python", "string", "Python version"),
        Field("host", "string", "host name"),
        Field("pid", "integer", "engine process id"),
        Field(
            "slurm_job_id",
            "string|null",
            "the Slurm job the engine runs in (`fnotui sweep --executor slurm`; read from "
            "`SLURM_JOB_ID`, or submitit's local job id under its local executor); null "
            "outside a batch job",
            since="slurm",
        ),
        Field("start_time", "number", "when the engine started", unit="Unix s"),
        T_FIELD,
    ),
)

HEADER_PHYSICS = RecordKind(
    "header.physics",
    "the forward model and loss ([science.md](science.md#forward-model))",
    (
        Field("loss_mode", "string", "`mae` or `poisson`"),
        Field(
            "gain",
            "number",
            "`physics_gain`, the factor on the predicted amplitude (1.0 by default)",
        ),
        Field(
            "gain_mode",
            "string",
            "`constant`, or `batch_length` (the gain is multiplied by the samples in each batch, "
            "the original's accident: [original_conditions.md](original_conditions.md))",
        ),
        Field(
            "effective_gain",
            "string",
            'a string in both modes: the factor applied in `constant` mode (e.g. `"17.45"`), '
            '`"physics_gain x samples in the batch"` in `batch_length` mode',
        ),
        Field(
            "loss_normalisation",
            "string",
            "how each batch's loss is normalised (by the detached batch-mean observed amplitude)",
        ),
        Field(
            "val_batch_size",
            "integer",
            "batch of the per-epoch validation pass; each of its batches is normalised on its own",
            unit="patterns",
        ),
        Field(
            "probe_twin_symmetry",
            "number|null",
            "copy of `dataset.probe.twin_symmetry`: 1 means every patch is ambiguous with its "
            "twin ([twin.md](twin.md))",
        ),
    ),
)

DATASET_PROBE = RecordKind(
    "header.dataset.probe",
    "how the probe was made ([science.md](science.md#the-probe))",
    (
        Field(
            "source",
            "object",
            "`kind` plus what defines it. `ideal_disk`: `disk_width`, `edge_sigma`. "
            "`defocused_aperture`: `aperture` (`circle` or `square`), `radius_freq_px`, "
            "`pupil_edge_sigma`, `waves_at_pupil_edge` (`defocus`, `astigmatism`, `coma`) and "
            "`beam_spread_px`. `file`: `path` and `sha256`",
        ),
        Field("smoothing_sigma", "number", "smoothing of amplitude and unwrapped phase", unit="px"),
        Field("mask_diameter", "number", "optional disk mask (0 = off)", unit="px"),
        Field("normalisation", "string", "the normalisation rule"),
        Field("probe_scale", "number", "its divisor parameter"),
        Field("normalisation_divisor", "number", "the number the probe was divided by"),
        Field(
            "used_by_physics",
            "string",
            "which probe the physics model uses (the normalised one) and how that differs from "
            "the original",
        ),
        Field(
            "twin_symmetry",
            "number",
            "max over shifts s of \\|Σ P(r) P(s − r)\\| / Σ \\|P\\|²: 1 for a real, "
            "centrosymmetric probe such as `ideal_disk`, 0.29 for the default "
            "`defocused_aperture` ([twin.md](twin.md))",
            since="the probe change",
        ),
    ),
)
