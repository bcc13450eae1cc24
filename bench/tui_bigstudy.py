"""The 'big' study of bench/tui_perf.py: a few arms whose telemetry totals a million records,
and the writer that then appends to each arm at a steady rate.

Arm 0 has a NaN episode (100 steps), so the strict per-line path is exercised too.
"""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

from engine.runs.telemetry import encode_record
from tests.tiny import tiny_study_toml

STEPS_PER_EPOCH = 1000


def arm_name(i: int) -> str:
    return f"bench_arm_{i:02d}"


def generate(root: Path, n_records: int, n_arms: int) -> tuple[Path, int, list[int]]:
    """A study whose telemetry totals ``n_records`` records (headers and epochs included).
    Arm 0 has a NaN episode (100 steps), so the strict per-line path is exercised too."""
    per_arm = n_records // n_arms
    epochs_total = per_arm // STEPS_PER_EPOCH + 10  # the writers add more: room to grow
    arms_toml = root / "arms.toml"
    arms = {arm_name(i): {"architecture": "hybrid", "lr": 1e-3 * (i + 1)} for i in range(n_arms)}
    body = tiny_study_toml("bench", arms, data={"set_phi": True}, epochs=epochs_total, seed=3)
    arms_toml.write_text(body)
    total = 0
    next_steps = []
    t0 = time.time() - per_arm * 0.02
    for a in range(n_arms):
        run = root / "runs" / arm_name(a)
        run.mkdir(parents=True)
        lines = [
            encode_record(
                {
                    "type": "header",
                    "schema": "fnotui/1",
                    "arm": arm_name(a),
                    "t": t0,
                    "config": {"train": {"epochs": epochs_total, "batch_size": 8}},
                    "steps_per_epoch": STEPS_PER_EPOCH,
                    "start_time": t0,
                    "parameters": 1000,
                    "host": socket.gethostname(),
                    "pid": 0,
                }
            )
        ]
        s = 0
        while len(lines) < per_arm - 1:
            t = t0 + s * 0.02
            loss = 1.0 / (1.0 + s / 5000.0) + 0.01 * ((s * 7919) % 13) / 13
            grad = 1.0 + 0.5 * ((s * 104729) % 17) / 17
            if a == 0 and 50_000 <= s < 50_100:
                lines.append(
                    encode_record(
                        {
                            "type": "step",
                            "epoch": s // STEPS_PER_EPOCH,
                            "step": s,
                            "loss": math.nan,
                            "lr": 1e-3,
                            "t": t,
                            "grad_norm": math.inf,
                        }
                    )
                )
            else:
                lines.append(
                    f'{{"type":"step","epoch":{s // STEPS_PER_EPOCH},"step":{s},'
                    f'"loss":{loss!r},"lr":0.001,"t":{t!r},"grad_norm":{grad!r}}}\n'
                )
            s += 1
            if s % STEPS_PER_EPOCH == 0 and len(lines) < per_arm - 1:
                e = s // STEPS_PER_EPOCH - 1
                lines.append(
                    encode_record(
                        {
                            "type": "epoch",
                            "epoch": e,
                            "step": s,
                            "train_loss": loss,
                            "val_loss": loss * 0.9,
                            "grad_norm": grad,
                            "lr": 1e-3,
                            "pred_amp_std": 0.1,
                            "target_amp_std": 0.12,
                            "epoch_time": 20.0,
                            "samples_per_s": 400.0,
                            "t": t,
                        }
                    )
                )
        lines.append(
            encode_record(
                {
                    "type": "event",
                    "rule": "plateau",
                    "severity": "info",
                    "epoch": s // STEPS_PER_EPOCH,
                    "step": s,
                    "value": 0.0,
                    "threshold": 0.0,
                    "message": "bench",
                    "t": t0,
                }
            )
        )
        (run / "telemetry.jsonl").write_text("".join(lines))
        total += len(lines)
        next_steps.append(s)
        (run / "status.json").write_text(
            json.dumps(
                {
                    "arm": arm_name(a),
                    "state": "finished",
                    "pid": 0,
                    "host": socket.gethostname(),
                    "heartbeat": time.time(),
                    "started": t0,
                    "epoch": s // STEPS_PER_EPOCH,
                    "epochs": epochs_total,
                    "step": s,
                    "exit_code": 0,
                }
            )
        )
    return arms_toml, total, next_steps


WRITER = r"""
import json, os, socket, sys, time
sys.path.insert(0, {repo!r})
from engine.atomic import atomic_write_json
run, rate, first = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
status = json.load(open(os.path.join(run, "status.json")))
status.update(state="running", pid=os.getpid(), host=socket.gethostname(), exit_code=None)
fh = open(os.path.join(run, "telemetry.jsonl"), "ab", buffering=0)
step, start, written, beat = first, time.monotonic(), 0, 0.0
while True:
    now = time.monotonic()
    if now - beat >= 10:
        status["heartbeat"] = time.time(); atomic_write_json(os.path.join(run, "status.json"), status); beat = now
    due = int((now - start) * rate) - written
    for _ in range(max(due, 0)):
        if (step + 1) % 1000 == 0:
            rec = {{"type": "epoch", "epoch": step // 1000, "step": step + 1, "train_loss": 0.1,
                   "val_loss": 0.09, "grad_norm": 1.0, "lr": 1e-3, "pred_amp_std": 0.1,
                   "epoch_time": 20.0, "samples_per_s": 400.0, "t": time.time()}}
        else:
            rec = {{"type": "step", "epoch": step // 1000, "step": step, "loss": 0.1 + (step % 7) * 0.01,
                   "lr": 1e-3, "t": time.time(), "grad_norm": 1.0 + (step % 5) * 0.1}}
        fh.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())
        step += 1; written += 1
    time.sleep(0.02)
"""
