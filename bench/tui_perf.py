"""Dashboard performance: first full frame on a 1,000,000-record study, then CPU and memory
while 8 engines write 50 records/s each. Results go in docs/benchmarks.md ("Dashboard").

The dashboard runs exactly as a user starts it (``python -m app.cli --arms ...``), in a
pseudo-terminal of 80x24, and the measurements are taken from outside the process:

- first full frame: wall time from spawning the process until its terminal output contains the
  row of the last arm (rows appear in one batch update, after every arm has been read);
- following: 8 writer processes append step records (and an epoch record every 1,000 steps) at
  50 records/s each and keep status.json beating, so every arm is "running"; the dashboard's
  CPU time (utime + stime from /proc) is sampled over the window, and its RSS (VmRSS, VmHWM).

Usage: python bench/tui_perf.py [--records 1000000] [--arms 8] [--follow-s 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runs.telemetry import encode_record  # noqa: E402
from tests.tiny import TINY_DATA, TINY_GENERATOR  # noqa: E402

STEPS_PER_EPOCH = 1000
ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")

ARMS_TOML = f"""
[study]
name = "bench"
output_dir = "runs"

[data]
{TINY_DATA}
train_stride = 8
test_stride = 8
set_phi = true

[defaults]
fno_width = 4
{TINY_GENERATOR}
epochs = {{epochs}}
batch_size = 8
seed = 3
"""


def arm_name(i: int) -> str:
    return f"bench_arm_{i:02d}"


def generate(root: Path, n_records: int, n_arms: int) -> tuple[Path, int, list[int]]:
    """A study whose telemetry totals ``n_records`` records (headers and epochs included).
    Arm 0 has a NaN episode (100 steps), so the strict per-line path is exercised too."""
    per_arm = n_records // n_arms
    epochs_total = per_arm // STEPS_PER_EPOCH + 10  # the writers add more: room to grow
    arms_toml = root / "arms.toml"
    body = textwrap.dedent(ARMS_TOML.format(epochs=epochs_total))
    body += "".join(
        f'\n[arms.{arm_name(i)}]\narchitecture = "hybrid"\nlr = {1e-3 * (i + 1):g}\n'
        for i in range(n_arms)
    )
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


class Tui:
    """The dashboard in a pseudo-terminal; a thread drains (and keeps) its output."""

    def __init__(self, arms: Path, cols: int = 80, rows: int = 24):
        self.started = time.monotonic()
        pid, fd = pty.fork()
        if pid == 0:  # child: the dashboard, exactly as a user starts it
            os.environ.update(TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
            os.chdir(REPO)
            os.execv(sys.executable, [sys.executable, "-m", "app.cli", "--arms", str(arms)])
        import fcntl
        import struct
        import termios

        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.pid, self.fd = pid, fd
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.alive = True
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while self.alive:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return
                if not data:
                    return
                with self.lock:
                    self.buf += data

    def wait_for(self, needle: bytes, timeout: float) -> float:
        """Seconds from spawn until ``needle`` appears in the de-ANSI'd output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                text = ANSI.sub(b"", bytes(self.buf))
            if needle in text:
                return time.monotonic() - self.started
            time.sleep(0.005)
        raise TimeoutError(f"{needle!r} never appeared")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_mb(self) -> tuple[float, float]:
        status = Path(f"/proc/{self.pid}/status").read_text()
        kb = {k: int(v.split()[0]) for k, v in re.findall(r"(VmRSS|VmHWM):\s+(.*)", status)}
        return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024

    def quit(self) -> None:
        os.write(self.fd, b"q")
        for _ in range(50):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        self.alive = False


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--arms", type=int, default=8)
    ap.add_argument("--rate", type=float, default=50.0, help="records/s per writer")
    ap.add_argument("--follow-s", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=3, help="first-frame repetitions")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fnotui-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        arms, total, next_steps = generate(root, args.records, args.arms)
        size = sum(p.stat().st_size for p in root.rglob("telemetry.jsonl"))
        print(f"machine: {machine()}")
        print(
            f"study: {args.arms} arms, {total:,} records, {size / 1e6:.0f} MB of telemetry "
            f"(generated in {time.perf_counter() - t:.1f} s)"
        )
        last = arm_name(args.arms - 1).encode()

        frames = []
        for _ in range(args.runs):
            tui = Tui(arms)
            frames.append(tui.wait_for(last, timeout=60))
            rss, hwm = tui.memory_mb()
            tui.quit()
            print(f"first full frame: {frames[-1]:.2f} s  (RSS {rss:.0f} MB, peak {hwm:.0f} MB)")
        frames.sort()
        print(f"first full frame, median of {len(frames)}: {frames[len(frames) // 2]:.2f} s")

        tui = Tui(arms)
        tui.wait_for(last, timeout=60)
        time.sleep(2.0)  # let the start-up settle
        writers = []
        for a in range(args.arms):
            run = root / "runs" / arm_name(a)
            writers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        WRITER.format(repo=str(REPO)),
                        str(run),
                        str(args.rate),
                        str(next_steps[a]),
                    ]
                )
            )
        try:
            tui.wait_for(b"running", timeout=30)
            cpu0, t0 = tui.cpu_s(), time.monotonic()
            peak_rss = 0.0
            while time.monotonic() - t0 < args.follow_s:
                time.sleep(1.0)
                peak_rss = max(peak_rss, tui.memory_mb()[0])
            cpu = (tui.cpu_s() - cpu0) / (time.monotonic() - t0)
            rss, hwm = tui.memory_mb()
            written = (
                sum(
                    (root / "runs" / arm_name(a) / "telemetry.jsonl").stat().st_size
                    for a in range(args.arms)
                )
                - size
            )
        finally:
            for w in writers:
                w.terminate()
            for w in writers:
                w.wait()
            tui.quit()
        print(
            f"following {args.arms} arms x {args.rate:g} records/s for {args.follow_s:g} s "
            f"({written / 1e3:.0f} kB appended): dashboard CPU {100 * cpu:.1f}% of one core, "
            f"RSS {rss:.0f} MB (max sampled {peak_rss:.0f} MB, VmHWM {hwm:.0f} MB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
