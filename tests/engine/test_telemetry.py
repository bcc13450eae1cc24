"""Telemetry lines are strict JSON, keep non-finite values by name, and survive torn writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from engine.atomic import atomic_write_json
from engine.runs.schema import (
    EPOCH,
    HEADER,
    HISTORY_FIELDS,
    RECORD_KINDS,
    RECORD_TYPES,
    SCHEMA,
    SEGMENT,
    STATUS,
    STEP,
)
from engine.runs.telemetry import (
    ReadStats,
    TelemetryWriter,
    decode_record,
    encode_record,
    iter_records,
    load_records,
    read_steps,
)


def test_nonfinite_values_become_null_and_are_named():
    line = encode_record(
        {
            "type": "step",
            "loss": math.nan,
            "grad_norm": math.inf,
            "lr": 1e-3,
            "ls": {"a": {"mean": -math.inf}},
            "v": [1.0, math.nan],
        }
    )
    strict = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert strict["loss"] is None and strict["grad_norm"] is None
    assert strict["nonfinite"] == {
        "/loss": "nan",
        "/grad_norm": "inf",
        "/ls/a/mean": "-inf",
        "/v/1": "nan",
    }
    back = decode_record(line)
    assert math.isnan(back["loss"]) and back["grad_norm"] == math.inf
    assert back["ls"]["a"]["mean"] == -math.inf and math.isnan(back["v"][1])
    assert back["lr"] == 1e-3 and "nonfinite" not in back


def test_finite_record_has_no_nonfinite_key():
    assert "nonfinite" not in json.loads(encode_record({"type": "step", "loss": 0.5}))


def test_writer_appends_lines_that_polars_reads(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    with TelemetryWriter(path) as w:
        for i in range(5):
            w.write({"type": "step", "step": i, "loss": math.nan if i == 3 else i / 10})
    df = pl.read_ndjson(path)
    assert df.height == 5
    assert df["loss"].to_list()[3] is None
    assert df["nonfinite"].to_list()[3] == {"/loss": "nan"}


def test_reader_skips_partial_last_line_and_counts_garbage(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    with TelemetryWriter(path) as w:
        w.write({"type": "step", "step": 0, "loss": 1.0})
    with open(path, "ab") as fh:
        fh.write(b"this is not json\n")
        fh.write(b'{"type": "step", "step": 1, "lo')  # torn write, no newline
    stats = ReadStats()
    records = list(iter_records(path, stats))
    assert [r["step"] for r in records] == [0]
    assert stats.bad_lines == 1 and stats.partial_tail


def test_writer_terminates_a_partial_line_left_by_a_crash(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    path.write_bytes(b'{"type":"step","step":0}\n{"type":"step","st')
    with TelemetryWriter(path) as w:
        w.write({"type": "segment", "step": 1})
    stats = ReadStats()
    records = list(iter_records(path, stats))
    assert [r["type"] for r in records] == ["step", "segment"]
    assert stats.bad_lines == 1 and not stats.partial_tail


def test_atomic_json_is_strict_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "history.json"
    atomic_write_json(target, {"val_loss": [1.0, math.nan]})
    assert json.loads(target.read_text()) == {"val_loss": [1.0, None]}
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_nonfinite_inside_dotted_and_slashed_keys_round_trips():
    record = {
        "type": "epoch",
        "layerscale": {"encoder.0.layerscale": {"mean": math.nan}},
        "odd": {"a/b~c": math.inf},
    }
    back = decode_record(encode_record(record))
    assert math.isnan(back["layerscale"]["encoder.0.layerscale"]["mean"])
    assert back["odd"]["a/b~c"] == math.inf


# -- the schema and the superseding rule ------------------------------------------------------


def _resumed_run(path):
    """A run interrupted in epoch 2 (after step 5) and resumed from the checkpoint after epoch 1
    (step 3), written through the engine's writer and record constructors."""
    with TelemetryWriter(path) as w:
        w.write(HEADER_ONLY_FIELDS)
        for step in range(6):
            epoch = step // 3
            w.write(STEP.record(epoch=epoch, step=step, loss=1.0 + step, lr=0.1, t=float(step)))
            if step % 3 == 2:
                w.write(_epoch(epoch, step + 1))
        w.write(STATUS.record(state="killed", exit_code=130, error="SIGKILL", t=7.0))
        w.write(_segment(resume_epoch=1, resume_step=3))
        for step in range(3, 9):
            epoch = step // 3
            w.write(STEP.record(epoch=epoch, step=step, loss=1.0 + step, lr=0.1, t=float(step)))
            if step % 3 == 2:
                w.write(_epoch(epoch, step + 1))


def _epoch(epoch: int, step: int) -> dict:
    values = dict.fromkeys(HISTORY_FIELDS, 0.5)
    return EPOCH.record(
        epoch=epoch,
        step=step,
        **values,
        next_lr=None,
        target_amp_std=0.2,
        epoch_time=1.0,
        samples_per_s=10.0,
        t=float(step),
    )


def _segment(resume_epoch: int, resume_step: int) -> dict:
    return SEGMENT.record(
        segment=1,
        resume_epoch=resume_epoch,
        resume_step=resume_step,
        pid=2,
        host="h",
        device={"type": "cpu"},
        start_time=8.0,
        t=8.0,
    )


# Built by the engine's record constructor: every declared header field, the few a reader of
# these tests looks at filled in.
HEADER_ONLY_FIELDS = HEADER.record(
    **{
        **dict.fromkeys(HEADER.names),
        "schema": SCHEMA,
        "arm": "a",
        "steps_per_epoch": 3,
        "t": 0.0,
    }
)


def test_record_constructors_refuse_fields_the_schema_does_not_declare():
    import pytest

    with pytest.raises(ValueError, match="undeclared"):
        STEP.record(epoch=0, step=0, loss=1.0, lr=0.1, t=0.0, lost=1.0)
    with pytest.raises(ValueError, match="missing"):
        STEP.record(epoch=0, step=0, lr=0.1, t=0.0)
    assert list(STEP.record(epoch=0, step=1, loss=2.0, lr=0.1, t=3.0)) == [
        "type",
        "epoch",
        "step",
        "loss",
        "lr",
        "t",
    ]


def test_every_record_kind_is_declared_with_t_and_unique_fields():
    assert tuple(RECORD_KINDS) == RECORD_TYPES
    for kind in RECORD_KINDS.values():
        assert "t" in kind.names, kind.name
        assert len(set(kind.names)) == len(kind.names), kind.name
    # one JSON type per field name across record kinds, so polars reads a file into one frame
    types: dict[str, str] = {}
    for kind in RECORD_KINDS.values():
        for f in kind.fields:
            assert types.setdefault(f.name, f.type.split("|")[0]) == f.type.split("|")[0], f.name


def test_load_records_and_read_steps_count_a_resumed_runs_repeated_steps_once(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    _resumed_run(path)
    assert len([r for r in iter_records(path) if r["type"] == "step"]) == 12
    records = load_records(path)
    assert [r["step"] for r in records if r["type"] == "step"] == list(range(9))
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [0, 1, 2]
    assert not [r for r in records if r["type"] == "status"]  # the interrupted ending
    steps = read_steps(path)
    assert steps.columns == list(STEP.names)
    assert steps["step"].to_list() == list(range(9))


def test_the_docs_polars_recipe_applies_the_superseding_rule(tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "telemetry.md").read_text()
    recipe = next(b for b in doc.split("```python\n")[1:] if "read_ndjson" in b).split("```")[0]
    for resumed in (True, False):
        path = tmp_path / f"{resumed}.jsonl"
        if resumed:
            _resumed_run(path)
        else:
            with TelemetryWriter(path) as w:
                w.write(HEADER_ONLY_FIELDS)
                w.write(STEP.record(epoch=0, step=0, loss=1.0, lr=0.1, t=0.0))
                w.write(_epoch(0, 1))
        scope: dict = {}
        exec(recipe.replace("runs/stage_a/arm_control/telemetry.jsonl", str(path)), scope)
        records = load_records(path)
        assert scope["steps"]["step"].to_list() == [
            r["step"] for r in records if r["type"] == "step"
        ]
        assert scope["epochs"]["epoch"].to_list() == [
            r["epoch"] for r in records if r["type"] == "epoch"
        ]


def test_the_run_store_supersedes_as_load_records_does(tmp_path):
    from engine.live.series import ArmSeries

    path = tmp_path / "telemetry.jsonl"
    _resumed_run(path)
    series = ArmSeries()
    series.ingest(path.read_bytes())
    records = load_records(path)
    assert series.steps["loss"].x.view().tolist() == [
        r["step"] for r in records if r["type"] == "step"
    ]
    assert series.epochs == [r for r in records if r["type"] == "epoch"]
    assert series.final_status is None


@pytest.mark.parametrize(
    "line",
    [
        '{"type":"step","loss":null,"nonfinite":["/loss"]}',
        '{"type":"step","loss":null,"nonfinite":"/loss"}',
        '{"type":"step","loss":null,"nonfinite":{"/loss":"NaN"}}',
        '{"type":"step","loss":null,"nonfinite":{"loss":"nan"}}',
    ],
)
def test_a_malformed_nonfinite_note_is_a_bad_line_not_a_crash(line):
    # Valid JSON a broken writer could produce: every reader counts it as a bad line.
    with pytest.raises(ValueError):
        decode_record(line)
