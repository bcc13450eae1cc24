"""Dashboard performance: first full frame, then CPU and memory while engines write.
Results go in docs/benchmarks.md ("Dashboard"). Two studies:

- ``--study sweep`` (default): 200 runs (40 arms x the arm and 4 seeds) replayed from real
  telemetry through the engine's TelemetryWriter (bench/tui_replay.py), 20 of them then written
  to at 20 records/s each; followed in the run table, then in the group view (g);
- ``--study big``: 8 arms with 1,000,000 records between them, all 8 written to at 50/s.

The dashboard runs exactly as a user starts it (``python -m app.cli --arms ...``), in a
pseudo-terminal of 80x24, and the measurements are taken from outside the process:

- first frame: wall time from spawning the process until the screen (the pseudo-terminal's
  output replayed on an 80x24 grid, ``Screen``) shows the row of the last arm (big) or of the
  first run (sweep: 200 rows do not fit in 24 lines), whatever its cells say: rows appear at
  once with placeholders ("reading…") for what needs the run's telemetry;
- first full frame: the same row on screen and no "reading" anywhere on it: every visible row,
  and the info panel of the highlighted one, holds its run's true values (the dashboard reads
  the runs on screen first and fills their rows as they are read);
- following: writer processes append step and epoch records and keep status.json beating, so
  their runs are "running"; the dashboard's CPU time (utime + stime from /proc) over the window
  divided by its wall time, and its RSS (VmRSS, VmHWM).

Usage: python bench/tui_perf.py [--study sweep|big] [--follow-s 30] [--runs 3] (see --help)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.tui_bigstudy import WRITER, arm_name, generate  # noqa: E402

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")
# What the dashboard writes: cursor moves (CSI row;col H) and text, styles and modes between.
TOKENS = re.compile(
    r"\x1b\[([0-9;?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]"
    r"|\x1b[=>78]|([^\x1b]+)"
)
PLACEHOLDER = "reading"  # app/widgets/cells.py READING, as the cells and the info panel show it


class Screen:
    """The terminal's character grid, rebuilt from the output: enough of a VT100 for Textual,
    which positions every update with an absolute cursor move."""

    def __init__(self, rows: int, cols: int):
        from rich.cells import cell_len

        self.cell_len = cell_len
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.y = self.x = 0
        self.pending = ""
        self.decoder = __import__("codecs").getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> None:
        text = self.pending + self.decoder.decode(data)
        cut = text.rfind("\x1b")
        # an escape sequence split across reads waits for its end
        if cut >= 0 and not TOKENS.match(text, cut) or cut >= 0 and len(text) - cut < 3:
            text, self.pending = text[:cut], text[cut:]
        else:
            self.pending = ""
        for m in TOKENS.finditer(text):
            params, final, chars = m.group(1), m.group(2), m.group(3)
            if final == "H":
                parts = [int(p) if p.isdigit() else 1 for p in (params or "").split(";")]
                self.y, self.x = parts[0] - 1, (parts[1] if len(parts) > 1 else 1) - 1
            elif final == "J" and params == "2":
                self.grid = [[" "] * self.cols for _ in range(self.rows)]
            elif chars:
                for ch in chars:
                    if ch == "\r":
                        self.x = 0
                    elif ch == "\n":
                        self.y += 1
                    elif 0 <= self.y < self.rows and 0 <= self.x < self.cols:
                        self.grid[self.y][self.x] = ch
                        for i in range(1, self.cell_len(ch)):
                            if self.x + i < self.cols:
                                self.grid[self.y][self.x + i] = ""
                        self.x += max(self.cell_len(ch), 1)

    def text(self) -> str:
        return "\n".join("".join(row) for row in self.grid)


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
        self.screen = Screen(rows, cols)
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
                    self.screen.feed(data)

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

    def wait_for_screen(self, needle: str, timeout: float, complete: bool) -> float:
        """Seconds from spawn until the screen shows ``needle`` (and, with ``complete``, no
        placeholder anywhere)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                text = self.screen.text()
            if needle in text and not (complete and PLACEHOLDER in text):
                return time.monotonic() - self.started
            time.sleep(0.005)
        raise TimeoutError(f"{needle!r} never appeared" + (" complete" if complete else ""))

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


def first_frames(arms: Path, needle: bytes, runs: int) -> float:
    """Median seconds to the first full frame over ``runs`` starts, each printed with its
    first frame (placeholders and all)."""
    frames, firsts = [], []
    for _ in range(runs):
        tui = Tui(arms)
        firsts.append(tui.wait_for_screen(needle.decode(), timeout=60, complete=False))
        frames.append(tui.wait_for_screen(needle.decode(), timeout=60, complete=True))
        rss, hwm = tui.memory_mb()
        tui.quit()
        print(
            f"first frame: {firsts[-1]:.2f} s, first full frame: {frames[-1]:.2f} s  "
            f"(RSS {rss:.0f} MB, peak {hwm:.0f} MB)"
        )
    frames.sort()
    firsts.sort()
    print(f"first frame, median of {len(firsts)}: {firsts[len(firsts) // 2]:.2f} s")
    print(f"first full frame, median of {len(frames)}: {frames[len(frames) // 2]:.2f} s")
    return frames[len(frames) // 2]


def start_measured(arms: Path, needle: bytes, runs: int) -> Tui:
    """``first_frames``, then one more start, settled, left running for the following."""
    first_frames(arms, needle, runs)
    tui = Tui(arms)
    tui.wait_for_screen(needle.decode(), timeout=60, complete=True)
    time.sleep(6.0)  # let the start-up and the first read of the runs off screen settle
    return tui


def follow(tui: Tui, seconds: float) -> tuple[float, float]:
    """The dashboard's CPU (fraction of one core) and largest sampled RSS over ``seconds``."""
    cpu0, t0 = tui.cpu_s(), time.monotonic()
    peak_rss = 0.0
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        peak_rss = max(peak_rss, tui.memory_mb()[0])
    return (tui.cpu_s() - cpu0) / (time.monotonic() - t0), peak_rss


def telemetry_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("telemetry.jsonl"))


def run_big(args, root: Path) -> None:
    """A few arms with a million records between them, every arm then written to."""
    t = time.perf_counter()
    arms, total, next_steps = generate(root, args.records, args.arms)
    size = telemetry_bytes(root)
    print(
        f"study: {args.arms} arms, {total:,} records, {size / 1e6:.0f} MB of telemetry "
        f"(generated in {time.perf_counter() - t:.1f} s)"
    )
    tui = start_measured(arms, arm_name(args.arms - 1).encode(), args.runs)
    code = WRITER.format(repo=str(REPO))
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(root / "runs" / arm_name(a))]
            + [str(args.rate), str(next_steps[a])]
        )
        for a in range(args.arms)
    ]
    try:
        tui.wait_for(b"running", timeout=30)
        cpu, peak_rss = follow(tui, args.follow_s)
        rss, hwm = tui.memory_mb()
        written = telemetry_bytes(root) - size
    finally:
        stop(writers, tui)
    print(
        f"following {args.arms} arms x {args.rate:g} records/s for {args.follow_s:g} s "
        f"({written / 1e3:.0f} kB appended): dashboard CPU {100 * cpu:.1f}% of one core, "
        f"RSS {rss:.0f} MB (max sampled {peak_rss:.0f} MB, VmHWM {hwm:.0f} MB)"
    )


def run_sweep(args, root: Path) -> None:
    """200 runs replayed from real telemetry (bench/tui_replay.py), ``--live`` of them then
    written to at ``--rate``; followed in the run table, then in the group view (g)."""
    from bench.tui_replay import WRITER as REPLAY_WRITER
    from bench.tui_replay import generate as generate_replay

    t = time.perf_counter()
    arms, names, live = generate_replay(root, args.records_per_run, args.live)
    size = telemetry_bytes(root)
    print(
        f"study: {len(names)} runs (40 arms with 4 seeds each), ~{args.records_per_run:,} "
        f"records each, {size / 1e6:.0f} MB of telemetry through TelemetryWriter "
        f"(generated in {time.perf_counter() - t:.1f} s)"
    )
    tui = start_measured(arms, names[0].encode() + b" ", args.runs)
    code = REPLAY_WRITER.format(repo=str(REPO))
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                w["run"],
                str(w["trace"]),
                str(w["epoch"]),
                str(w["epochs"]),
                str(args.rate),
            ]
        )
        for w in live
    ]
    try:
        for w, proc in zip(live, writers):  # every writer has taken over its run
            deadline = time.monotonic() + 30
            while json.loads((Path(w["run"]) / "status.json").read_text())["pid"] != proc.pid:
                assert time.monotonic() < deadline, "a writer never started"
                time.sleep(0.1)
        time.sleep(2.0)
        cpu_runs, rss_runs = follow(tui, args.follow_s)
        started = time.monotonic()
        os.write(tui.fd, b"g")
        tui.wait_for(b"verdicts", timeout=30)
        toggle = time.monotonic() - started
        time.sleep(1.0)
        cpu_groups, rss_groups = follow(tui, args.follow_s)
        rss, hwm = tui.memory_mb()
        written = telemetry_bytes(root) - size
    finally:
        stop(writers, tui)
    print(f"g (group view) shown {toggle:.2f} s after the key")
    what = f"following {len(live)} runs x {args.rate:g} records/s for {args.follow_s:g} s"
    print(
        f"{what}, run table: dashboard CPU {100 * cpu_runs:.1f}% of one core "
        f"(max sampled RSS {rss_runs:.0f} MB)"
    )
    print(
        f"{what}, group view: dashboard CPU {100 * cpu_groups:.1f}% of one core "
        f"(max sampled RSS {rss_groups:.0f} MB); {written / 1e3:.0f} kB appended in all, "
        f"RSS {rss:.0f} MB, VmHWM {hwm:.0f} MB"
    )


def stop(writers, tui: Tui) -> None:
    for w in writers:
        w.terminate()
    for w in writers:
        w.wait()
    tui.quit()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=("sweep", "big"), default="sweep")
    ap.add_argument("--records", type=int, default=1_000_000, help="big: records in all")
    ap.add_argument("--arms", type=int, default=8, help="big: arms")
    ap.add_argument("--records-per-run", type=int, default=5000, help="sweep: per run")
    ap.add_argument("--live", type=int, default=20, help="sweep: runs written to")
    ap.add_argument("--rate", type=float, default=None, help="records/s per writer")
    ap.add_argument("--follow-s", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=3, help="first-frame repetitions")
    args = ap.parse_args()
    if args.rate is None:  # 400 records/s in all, either way
        args.rate = 20.0 if args.study == "sweep" else 50.0
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="fnotui-bench-") as tmp:
        (run_sweep if args.study == "sweep" else run_big)(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
