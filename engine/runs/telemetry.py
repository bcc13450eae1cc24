"""Append-only JSONL telemetry: record encoding, the one writer, and a tolerant reader.

Strict JSON on every line (docs/telemetry.md, 'Guarantees'): NaN and +-inf are not JSON, so each
non-finite float is written as ``null`` and named in the record's ``nonfinite`` object
(JSON Pointer of the field, RFC 6901 -> "nan" | "inf" | "-inf"); ``decode_record`` restores them.
JSON Pointers, not dotted paths: state-dict names such as ``encoder.0.layerscale`` contain dots. Losing the record
that carries the NaN would be the worst possible bug for a collapse-hunting tool.

The schema (record kinds and their fields) is declared here once, as ``RecordKind`` and ``Field``
objects: the engine builds its records with ``RecordKind.record``, readers take their field
lists from the declarations, and docs/telemetry.md's tables are generated from them. Bump
SCHEMA's major version only on a breaking change, otherwise add fields.

After a resume the file repeats the records since the last checkpoint; ``superseded`` is the one
rule that says which records the resumed process replaced, and ``load_records`` / ``read_steps``
are the readers that apply it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import TelemetryError

SCHEMA = "fnotui/1"
TELEMETRY_FILE = "telemetry.jsonl"
# A line longer than this is a broken writer, not a record: readers skip it and count it.
MAX_LINE_BYTES = 1 << 20

# -- the schema, declared once ------------------------------------------------------------------
#
# Every record kind and its fields. The engine builds its records through ``RecordKind.record``
# (which refuses a field the schema does not declare), readers take their field lists from here,
# and docs/telemetry.md's field tables are generated from these declarations
# (scripts/gen_telemetry_doc.py; tests/test_docs.py fails when they differ).


@dataclass(frozen=True)
class Field:
    """One field of a record (or of an object inside one)."""

    name: str
    type: str  # JSON type: string, integer, number, boolean, object, array; "|null" if nullable
    meaning: str
    unit: str = ""
    # When the field is left out ("" = in every record of its kind).
    optional: str = ""
    # The change that added it; files written before lack it ("" = since fnotui/1 began).
    since: str = ""
    series: bool = False  # a per-step or per-epoch number the dashboard plots
    history: bool = False  # also kept per epoch in history.json, one list per field


@dataclass(frozen=True)
class RecordKind:
    """A record type (or an object nested in one) and its fields, in documentation order."""

    name: str
    when: str
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        names = tuple(f.name for f in self.fields)
        object.__setattr__(self, "_names", frozenset(names))
        required = frozenset(f.name for f in self.fields if not f.optional and not f.since)
        object.__setattr__(self, "_required", required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def series(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.series)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def record(self, **values: Any) -> dict:
        """A record of this kind, fields in the order given (the order they are written in).

        Refuses an undeclared field or a missing one that every record carries, so a writer
        cannot drift from the schema without a test noticing."""
        unknown = values.keys() - self._names
        missing = self._required - values.keys()
        if unknown or missing:
            raise ValueError(
                f"{self.name} record: undeclared {sorted(unknown)}, missing {sorted(missing)} "
                "(declare fields in engine/runs/telemetry.py)"
            )
        return {"type": self.name, **values}


_T = Field("t", "number", "wall-clock time the record was written", unit="Unix s")


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
        _T,
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
        _T,
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
        _T,
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
        _T,
    ),
)

STATUS = RecordKind(
    "status",
    "the last record of a run that ended on its own terms",
    (
        Field("state", "string", "`finished`, `failed` or `killed`"),
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
            optional="failed and killed runs",
        ),
        Field(
            "stopped_early",
            "string|null",
            'the rule that stopped training under `on_collapse = "stop"`, else null',
            optional="failed and killed runs",
        ),
        _T,
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
        _T,
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
        _T,
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


def _nonfinite_name(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def _pointer_token(key) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def encode_record(record: dict) -> str:
    """One strict-JSON line (with trailing newline); non-finite floats become null + a note."""
    nonfinite: dict[str, str] = {}

    def clean(value: Any, pointer: str) -> Any:
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            nonfinite[pointer] = _nonfinite_name(value)
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{pointer}/{_pointer_token(k)}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        return value

    cleaned = clean(record, "")
    if nonfinite:
        cleaned["nonfinite"] = nonfinite
    return json.dumps(cleaned, allow_nan=False, separators=(",", ":")) + "\n"


def _set_pointer(obj: Any, pointer: str, value: float) -> None:
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
    for token in tokens[:-1]:
        obj = obj[int(token)] if isinstance(obj, list) else obj[token]
    last = tokens[-1]
    if isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value


_NONFINITE_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def decode_record(line: str | bytes) -> dict:
    """Parse one line and restore the non-finite values it names. Raises ValueError if bad."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("a telemetry record must be a JSON object")
    for pointer, name in record.pop("nonfinite", {}).items():
        try:
            _set_pointer(record, pointer, _NONFINITE_VALUES[name])
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(f"bad nonfinite entry {pointer!r}: {name!r}") from None
    return record


class TelemetryWriter:
    """The single writer of one arm's telemetry file.

    One ``write()`` per complete line (so a crash leaves at most one partial last line), a flush
    after every record, ``fsync`` on demand (the loop calls it at each epoch end and at exit).
    A partial last line left by an earlier crash is terminated before appending, so the new
    records never get glued onto it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._terminate_partial_line()
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 (held until close())
        self.records_written = 0
        self.bytes_written = 0

    def _terminate_partial_line(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() == 0:
                    return
                fh.seek(-1, os.SEEK_END)
                last = fh.read(1)
        except FileNotFoundError:
            return
        if last != b"\n":
            with open(self.path, "ab") as fh:
                fh.write(b"\n")

    def write(self, record: dict) -> None:
        data = encode_record(record).encode("utf-8")
        start = self._fh.tell()
        try:
            view = memoryview(data)
            while view:  # unbuffered: normally one write() syscall per line
                n = self._fh.write(view)
                if not n:
                    raise OSError(f"write returned {n}")
                view = view[n:]
        except OSError as exc:
            # A full disk (or a file-size limit) can take half a line: cut it off again, so the
            # file stays whole records up to the last one that fit.
            try:
                os.ftruncate(self._fh.fileno(), start)
            except OSError:
                pass
            raise TelemetryError(f"cannot append to {self.path}: {exc}") from exc
        self.records_written += 1
        self.bytes_written += len(data)

    def fsync(self) -> None:
        try:
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise TelemetryError(f"cannot fsync {self.path}: {exc}") from exc

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self.fsync()
            finally:
                self._fh.close()

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ReadStats:
    """What a reader could not use: counted, never hidden."""

    def __init__(self) -> None:
        self.bad_lines = 0
        self.partial_tail = False
        self.unknown_types = 0


def decode_lines(lines, stats: ReadStats) -> list[dict]:
    """Decode complete lines; blank lines are skipped, bad or over-long ones counted."""
    records = []
    for raw in lines:
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            stats.bad_lines += 1
            continue
        try:
            record = decode_record(raw)
        except ValueError:
            stats.bad_lines += 1
            continue
        if record.get("type") not in RECORD_TYPES:
            stats.unknown_types += 1
        records.append(record)
    return records


def iter_records(path: Path, stats: ReadStats | None = None) -> Iterator[dict]:
    """Every complete, parseable record of a telemetry file, in order.

    Unparseable or over-long lines are skipped and counted; an unterminated last line is the
    writer's record in progress (or a crash leftover) and is never parsed.
    """
    stats = stats if stats is not None else ReadStats()
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        stats.partial_tail = True
    yield from decode_lines(lines, stats)


def resume_point(segment: dict) -> tuple[float, float]:
    """(epoch, step) a ``segment`` record resumes from; a missing or non-numeric value reads as 0."""
    return _number(segment.get("resume_epoch")), _number(segment.get("resume_step"))


def superseded(record: dict, resume_epoch: float, resume_step: float) -> bool:
    """Whether a resume from (``resume_epoch``, ``resume_step``) replaces ``record``, one the
    interrupted process wrote before the ``segment`` record.

    The resumed process recomputes everything from its checkpoint on: the epoch records from
    ``resume_epoch``, the step and event records from ``resume_step``, and the interrupted
    process's ending (its metrics and status). The header and earlier segments stay. This is the
    one rule: ``resolve_segments`` applies it to a record list, the dashboard's run store
    (engine/live/series.py) to its series, the docs' polars recipe to a frame.
    """
    kind = record.get("type")
    if kind in BARRIERS:
        return False
    if kind in (STATUS.name, METRICS.name):
        return True  # the interrupted process's ending is not the run's ending
    if kind == EPOCH.name:
        return _number(record.get("epoch")) >= resume_epoch
    return _number(record.get("step")) >= resume_step


def _number(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return float(value)
    return 0.0


def resolve_segments(records) -> list[dict]:
    """The logical record stream of a run that may have been resumed.

    A ``segment`` record (written by a resumed engine) says training continued from the
    checkpoint taken after ``resume_epoch`` epochs and ``resume_step`` steps; the records it
    ``superseded`` are dropped. The result reads as one uninterrupted run, plus the segment
    markers themselves.
    """
    out: list[dict] = []
    for r in records:
        if r.get("type") == SEGMENT.name:
            epoch, step = resume_point(r)
            out = [k for k in out if not superseded(k, epoch, step)]
        out.append(r)
    return out


def load_records(path: Path, stats: ReadStats | None = None) -> list[dict]:
    """Every record of a telemetry file as one uninterrupted run: the documented reader.

    ``iter_records`` with the superseding rule applied, so the steps a resumed run repeats are
    counted once. Pass ``stats`` to learn how many lines could not be used.
    """
    return resolve_segments(iter_records(path, stats))


# Polars types of the scalar JSON types; object and array fields stay out of frames.
_POLARS_TYPES = {"integer": "Int64", "number": "Float64", "string": "String", "boolean": "Boolean"}


def records_frame(records, kind: RecordKind = STEP):
    """The records of one kind as a polars frame, one column per scalar field of the
    declaration (in its order); non-finite values stay NaN, absent fields are null."""
    import polars as pl

    schema = {
        f.name: getattr(pl, _POLARS_TYPES[f.type.split("|")[0]])
        for f in kind.fields
        if f.type.split("|")[0] in _POLARS_TYPES
    }
    cols: dict[str, list] = {k: [] for k in schema}
    for r in records:
        if r.get("type") == kind.name:
            for k, v in cols.items():
                v.append(r.get(k))
    return pl.DataFrame(cols, schema=schema, strict=False)


def read_steps(path: Path, stats: ReadStats | None = None):
    """The step records of a telemetry file as a polars frame (columns: the step fields), each
    step once even after a resume."""
    return records_frame(load_records(path, stats), STEP)
