"""The telemetry schema, declared once: every record kind and its fields.

The engine builds its records through ``RecordKind.record`` (which refuses a field the schema
does not declare), readers take their field lists from here, and docs/telemetry.md's field tables
are generated from these declarations (scripts/gen_telemetry_doc.py; tests/test_docs.py fails
when they differ). Bump SCHEMA's major version only on a breaking change, otherwise add fields.
The header's declaration is in engine/runs/header_schema.py; this module re-exports it.
"""

from __future__ import annotations

from engine.runs.header_schema import DATASET_PROBE, HEADER, HEADER_PHYSICS
from engine.runs.schema_types import SCHEMA, T_FIELD, Field, RecordKind

__all__ = [
    "BARRIERS",
    "COMMON",
    "DATASET_PROBE",
    "EPOCH",
    "EVENT",
    "HEADER",
    "HEADER_PHYSICS",
    "HISTORY_FIELDS",
    "METRICS",
    "RECORD_KINDS",
    "RECORD_TYPES",
    "SCHEMA",
    "SEGMENT",
    "STATUS",
    "STEP",
    "Field",
    "RecordKind",
]

STEP = RecordKind(
    "step",
    "one per optimizer step",
    (
        Field("epoch", "integer", "0-based epoch"),
        Field("step", "integer", "0-based global optimizer step, monotonic over the run"),
        Field("loss", "number", "training loss of this step's batch", series=True),
        Field(
            "grad_norm",
            "number",
            "global L2 norm of all gradients **before** clipping",
            optional="steps where `step % grad_norm_log_freq != 0`",
            series=True,
        ),
        Field(
            "grad_norm_clipped",
            "number",
            "the same norm after clipping",
            optional="clipping off, or the norm not measured on this step",
            series=True,
        ),
        Field(
            "lr", "number", "learning rate read back from the optimizer for this step", series=True
        ),
        Field("t", "number", "wall time when the step's record was produced", unit="Unix s"),
    ),
)

EPOCH = RecordKind(
    "epoch",
    "one per completed epoch",
    (
        Field("epoch", "integer", "0-based epoch"),
        Field("step", "integer", "global steps done so far", unit="steps"),
        Field(
            "train_loss",
            "number",
            "sample-weighted mean of the epoch's step losses",
            series=True,
            history=True,
        ),
        Field(
            "val_loss",
            "number",
            "loss on the whole test split (mean over `val_batch_size` batches, each normalised "
            "by its own mean observation)",
            series=True,
            history=True,
        ),
        Field(
            "grad_norm",
            "number",
            "mean of the epoch's measured pre-clip grad norms",
            series=True,
            history=True,
        ),
        Field(
            "lr",
            "number",
            "learning rate used during this epoch (read back from the optimizer)",
            series=True,
            history=True,
        ),
        Field(
            "next_lr",
            "number|null",
            "the rate the schedule gives the next epoch (null after the last)",
        ),
        Field(
            "pred_amp_std",
            "number",
            "mean over the first 64 test patches of each predicted patch's amplitude std across "
            "pixels; near zero = constant-output collapse",
            unit="normalised amplitude",
            series=True,
            history=True,
        ),
        Field(
            "target_amp_std",
            "number",
            "the header's reference spread, repeated",
            unit="normalised amplitude",
            series=True,
        ),
        Field(
            "val_amp_mae",
            "number",
            "amplitude error against the ground truth: MAE over the central region of every test "
            "patch that stitching keeps, after one mean-ratio scale over the test set (as the "
            "final evaluation aligns amplitudes), multiplied by the test `norm_Y_I`. The loss is "
            "blind to the phase-retrieval ambiguities; this is not "
            "(docs/studies/stage_a_h100/README.md). Runs written before the twin-aware "
            "validation logged it *divided* by `norm_Y_I` (normalised patch units); they are "
            "the runs without `val_amp_mae_twin`, and a reader converts them by multiplying "
            "with `dataset.norm_Y_I.test` of the header (the dashboard does)",
            unit="object amplitude",
            since="amplitude validation",
            series=True,
            history=True,
        ),
        Field(
            "val_amp_mae_twin",
            "number",
            "the same error against the twin of every test patch (flipped through its centre). "
            "Near zero while `val_amp_mae` is large: the generator reconstructs the twin "
            "([twin.md](twin.md))",
            unit="object amplitude",
            since="twin-aware validation",
            series=True,
            history=True,
        ),
        Field(
            "val_twin_fraction",
            "number",
            "fraction of the decidable test patches whose prediction is on the twin branch, by "
            "the rule of the final evaluation (engine/scoring/twin.py); NaN (written `null`, "
            "named in `nonfinite`) when no patch is decidable",
            unit="fraction",
            since="twin-aware validation",
            series=True,
            history=True,
        ),
        Field(
            "layerscale",
            "object",
            "`{param name: {mean, std, abs_max}}` of every LayerScale gamma",
            optional="arms without LayerScale (only stable arms have it)",
        ),
        Field(
            "norm_weights",
            "object",
            "the same for every normalisation weight",
            optional="arms without normalisation layers (only stable arms have them)",
        ),
        Field("epoch_time", "number", "wall time of the epoch including validation", unit="s"),
        Field("samples_per_s", "number", "training patterns per second over the epoch", unit="1/s"),
        T_FIELD,
    ),
)

EVENT = RecordKind(
    "event",
    "a detector fired",
    (
        Field(
            "rule",
            "string",
            "`nonfinite_loss`, `nonfinite_grad`, `nonfinite_val`, `loss_spike`, `grad_spike`, "
            "`divergence`, `output_collapse`, `plateau` (engine/scoring/detectors.py)",
        ),
        Field("severity", "string", "`info`, `warning`, `collapse` or `fatal`"),
        Field("epoch", "integer", "0-based epoch where it fired"),
        Field("step", "integer", "0-based global step where it fired"),
        Field("value", "number", "the signal"),
        Field("threshold", "number", "the bound it crossed"),
        Field("message", "string", "one readable sentence"),
        Field(
            "onset_epoch",
            "integer",
            "the first epoch of the condition",
            optional="step rules, and epoch rules without a patience",
        ),
        T_FIELD,
    ),
)

METRICS = RecordKind(
    "metrics",
    "after the final evaluation",
    (
        Field("epoch", "integer", "0-based epoch of the scored weights"),
        Field("step", "integer", "global step of the scored weights"),
        Field(
            "weights",
            "string",
            'which weights were scored: `"last epoch"`, or `"at the stop (after step S, during '
            'epoch E)"` for a stopped run re-scored by `fnotui evaluate`',
        ),
        Field(
            "metrics",
            "object",
            "the headline `[amplitude, phase]` pairs (`mae`, `mse`, `psnr`, `ssim`, `frc50`) and "
            "the twin summary (`twin_fraction`, `twin_undecidable_fraction`, `ssim_vs_twin`)",
        ),
        Field(
            "reevaluated",
            "boolean",
            "true on a record appended by `fnotui evaluate`",
            optional="the engine's own final evaluation",
        ),
        T_FIELD,
    ),
)

STATUS = RecordKind(
    "status",
    "the last record of a run that ended on its own terms",
    (
        Field("state", "string", "`finished`, `failed`, `oom` or `killed`"),
        Field("exit_code", "integer", "the engine's exit code"),
        Field(
            "error",
            "string",
            "why the run failed or was killed",
            optional="runs that finished or were stopped on request",
        ),
        Field(
            "epochs_done",
            "integer",
            "epochs completed",
            optional="failed, oom and killed runs",
        ),
        Field(
            "stopped_early",
            "string|null",
            'the rule that stopped training under `on_collapse = "stop"`, else null',
            optional="failed, oom and killed runs",
        ),
        Field(
            "oom_bytes_requested",
            "integer|null",
            "the allocation that failed, as the out-of-memory error reported it (null when the "
            "message names no size)",
            unit="bytes",
            optional="runs that did not end out of memory",
            since="oom state",
        ),
        Field(
            "device_capacity_bytes",
            "integer|null",
            "the device's memory when it ran out: the GPU's total memory, or on the CPU the "
            "host's (or the cgroup's) limit",
            unit="bytes",
            optional="runs that did not end out of memory",
            since="oom state",
        ),
        T_FIELD,
    ),
)

SEGMENT = RecordKind(
    "segment",
    "written by a resumed engine (`--resume`) instead of a second header",
    (
        Field("segment", "integer", "1, 2, … for each resume"),
        Field("resume_epoch", "integer", "epochs done at the checkpoint training continues from"),
        Field("resume_step", "integer", "steps done at that checkpoint", unit="steps"),
        Field("pid", "integer", "the resumed engine's process id"),
        Field("host", "string", "host name"),
        Field("device", "object", "as in the header"),
        Field("start_time", "number", "when the resumed engine started", unit="Unix s"),
        T_FIELD,
    ),
)

RECORD_KINDS: dict[str, RecordKind] = {
    k.name: k for k in (HEADER, STEP, EPOCH, EVENT, METRICS, STATUS, SEGMENT)
}
# Records that split the stream: a header starts a run, a segment resumes one.
BARRIERS = (HEADER.name, SEGMENT.name)
COMMON = RecordKind(
    "every record",
    "",
    (
        Field("type", "string", "the record kind: " + ", ".join(f"`{k}`" for k in RECORD_KINDS)),
        T_FIELD,
        Field(
            "nonfinite",
            "object",
            'JSON Pointer of each non-finite float (written `null`) -> `"nan"`, `"inf"` or '
            '`"-inf"`',
            optional="records without a NaN or inf",
        ),
    ),
)

# history.json's keys, in the order the engine writes them.
HISTORY_FIELDS = tuple(f.name for f in EPOCH.fields if f.history)
RECORD_TYPES = tuple(RECORD_KINDS)
