"""A sweep study of 200 runs replayed from real training telemetry, for bench/tui_perf.py.

The runs replay the real traces of tests/fixtures/traces (short CPU runs of the tiny study:
healthy, collapsing and NaN arms, 21 steps an epoch) through the engine's ``TelemetryWriter``,
one record per ``write``, as the engine writes them: each run cycles its trace's epochs (step
records, then the epoch record) stretched to its length (trace epoch ``e * n // epochs`` at
run epoch ``e``, so a run collapses or goes NaN as late in its life as its trace did),
renumbered and re-timed, then the trace's final metrics and status records. 40 arms (four architectures) each with a seeds-only sweep of
four points make 200 runs in 40 groups of 5 (the arm and its seeds). ``live`` runs stop half-way,
marked running: ``WRITER`` then continues one of them at a steady rate, with the same writer.
"""

from __future__ import annotations

import copy
import json
import math
import socket
import time
from pathlib import Path

from engine.runs.telemetry import TelemetryWriter, decode_record
from tests.tiny import tiny_study_toml

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "tests" / "fixtures" / "traces"
ARCHITECTURES = ("cnn", "fno", "hybrid", "stable_hybrid")
SEEDS = (11, 12, 13, 14)
RECORD_DT = 0.05  # seconds between replayed records (a 20 steps/s run)


def arm_name(i: int) -> str:
    return f"bench_a{i:02d}"


def load_traces() -> list[list[dict]]:
    """The real traces, decoded (their NaN notes restored), in name order."""
    return [
        [decode_record(line) for line in path.read_text().splitlines() if line.strip()]
        for path in sorted(TRACES.glob("real_*.jsonl"))
    ]


def epoch_blocks(trace: list[dict]) -> list[tuple[list[dict], dict]]:
    """(steps, epoch record) of every epoch of a trace."""
    blocks, steps = [], []
    for rec in trace:
        if rec["type"] == "step":
            steps.append(rec)
        elif rec["type"] == "epoch":
            blocks.append((steps, rec))
            steps = []
    return blocks


def block(blocks: list, e: int, epochs: int) -> tuple[list[dict], dict]:
    """The trace epoch that run epoch ``e`` of ``epochs`` replays."""
    return blocks[min(e * len(blocks) // epochs, len(blocks) - 1)]


def replay(trace: list[dict], run: str, epochs: int, first: int, last: int, t0: float):
    """Records of epochs ``first``..``last - 1`` of a run that stretches the trace's epochs over
    ``epochs`` (the header before epoch 0), renumbered and timed from ``t0``."""
    blocks = epoch_blocks(trace)
    spe = len(blocks[0][0])
    t = t0 + first * (spe + 1) * RECORD_DT
    if first == 0:
        header = copy.deepcopy(trace[0])
        header["arm"] = header["config"]["name"] = run
        header["config"]["train"]["epochs"] = epochs
        header.update(host=socket.gethostname(), start_time=t0, t=t0)
        yield header
    for e in range(first, last):
        steps, end = block(blocks, e, epochs)
        for k, rec in enumerate(steps):
            t += RECORD_DT
            yield {**rec, "epoch": e, "step": e * spe + k, "t": t}
        t += RECORD_DT
        yield {**end, "epoch": e, "step": (e + 1) * spe, "t": t}


def ending(trace: list[dict], epochs: int, t: float) -> list[dict]:
    """The trace's final metrics and status records, moved to the run's last epoch."""
    spe = len(epoch_blocks(trace)[0][0])
    out = []
    for rec in trace:
        if rec["type"] in ("metrics", "status"):
            out.append({**rec, "epoch": epochs - 1, "step": epochs * spe, "t": t})
    return out


def write_status(run: Path, state: str, epoch: int, epochs: int, **fields) -> None:
    status = {
        "arm": run.name,
        "state": state,
        "pid": 0,
        "host": socket.gethostname(),
        "heartbeat": time.time(),
        "started": time.time(),
        "epoch": epoch,
        "epochs": epochs,
        "exit_code": 0 if state == "finished" else None,
        **fields,
    }
    (run / "status.json").write_text(json.dumps(status))


def generate(root: Path, records_per_run: int, live: int) -> tuple[Path, list[str], list[dict]]:
    """The study: arms.toml, every run's telemetry and status; returns the arms file, the run
    names in study order and, for each live run, what its writer continues from."""
    traces = load_traces()
    spe = len(epoch_blocks(traces[0])[0][0])
    epochs = max(2, math.ceil(records_per_run / (spe + 1)))
    arms = [arm_name(i) for i in range(40)]
    body = tiny_study_toml(
        "bench200",
        {
            arm: {"architecture": ARCHITECTURES[i % 4], "lr": 1e-3 * (1 + i % 5)}
            for i, arm in enumerate(arms)
        },
        data={"set_phi": True},
        sweeps={"seeds": {"arms": arms, "grid": {"seed": list(SEEDS)}}},
        epochs=epochs,
        seed=3,
    )
    arms_toml = root / "arms.toml"
    arms_toml.parent.mkdir(parents=True, exist_ok=True)
    arms_toml.write_text(body)
    names = arms + [f"{arm}.seed-{s}" for arm in arms for s in SEEDS]
    live_every = len(names) // live if live else 0
    live_runs = []
    t0 = time.time() - epochs * (spe + 1) * RECORD_DT
    for n, name in enumerate(names):
        trace = traces[n % len(traces)]
        run = root / "runs" / name
        is_live = live_every and n % live_every == live_every - 1 and len(live_runs) < live
        last = epochs // 2 if is_live else epochs
        writer = TelemetryWriter(run / "telemetry.jsonl")
        try:
            for rec in replay(trace, name, epochs, 0, last, t0):
                writer.write(rec)
            if not is_live:
                for rec in ending(trace, epochs, time.time()):
                    writer.write(rec)
        finally:
            writer.close()
        if is_live:
            live_runs.append(
                {"run": str(run), "trace": n % len(traces), "epoch": last, "epochs": epochs}
            )
            write_status(run, "running", last, epochs)
        else:
            write_status(run, "finished", epochs, epochs)
    return arms_toml, names, live_runs


WRITER = r"""
import json, os, socket, sys, time
sys.path.insert(0, {repo!r})
from bench.tui_replay import block, epoch_blocks, load_traces
from engine.atomic import atomic_write_json
from engine.runs.telemetry import TelemetryWriter
run, trace, epoch, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rate = float(sys.argv[5])
blocks = epoch_blocks(load_traces()[trace])
spe = len(blocks[0][0])
status_path = os.path.join(run, "status.json")
status = json.load(open(status_path))
status.update(state="running", pid=os.getpid(), host=socket.gethostname(), exit_code=None)
writer = TelemetryWriter(os.path.join(run, "telemetry.jsonl"))
def records(e):
    while True:
        steps, end = block(blocks, e, epochs)
        for k, rec in enumerate(steps):
            yield {{**rec, "epoch": e, "step": e * spe + k}}
        yield {{**end, "epoch": e, "step": (e + 1) * spe}}
        e += 1
source = records(epoch)
start, written, beat = time.monotonic(), 0, 0.0
while True:
    now = time.monotonic()
    if now - beat >= 10:
        status["heartbeat"] = time.time(); atomic_write_json(status_path, status); beat = now
    for _ in range(max(int((now - start) * rate) - written, 0)):
        writer.write({{**next(source), "t": time.time()}})
        written += 1
    time.sleep(0.02)
"""
