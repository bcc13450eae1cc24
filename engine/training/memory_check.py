"""Memory before a launch and after an out-of-memory: the torch-free side of the estimate.

``estimates(cfgs)`` gives each arm's MemoryEstimate (engine/training/memory_estimate.py traces
it) for ``fnotui list``, ``fnotui sweep NAME --list`` and the dashboard. The trace needs torch
(seconds to import, ~1 s per generator on a 2-core CPU), which the read-only commands never
import: the estimates are cached on disk per distinct config (a 1,000-point seed sweep is one
entry) and the missing ones are traced in one child process.

``check_fits`` refuses a launch whose estimate exceeds the memory of its device, and
``oom_details`` reads an out-of-memory error into the numbers the final status records.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from engine.atomic import atomic_write_json
from engine.config import ArmConfig
from engine.errors import ConfigError

# Bump when the estimate's method changes: cached estimates of another version are recomputed.
ESTIMATE_VERSION = 1
# The child that traces the missing estimates: torch's import plus ~1 s per config.
TRACE_TIMEOUT_S = 600.0
# The train knobs the estimate depends on (the rest, lr or seed, share one cache entry).
_TRAIN_KEYS = (
    "batch_size",
    "val_batch_size",
    "infer_batch_size",
    "optimizer",
    "momentum",
    "precision",
    "loss",
    "physics_gain_mode",
)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes an arm needs on its device, by what holds them."""

    parameters: int  # and buffers
    gradients: int
    optimizer_state: int
    activations: int  # the training step's peak beyond its gradients
    evaluation: int  # the peak of the no-grad forward at max(infer, val) batch size
    data: int  # training and test tensors the loop moves to the device once
    batch_size: int

    @property
    def total(self) -> int:
        """The steady state (weights, gradients, optimizer state, data) plus the larger of the
        two transient peaks: training and evaluation never overlap."""
        steady = self.parameters + self.gradients + self.optimizer_state + self.data
        return steady + max(self.activations, self.evaluation)

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}

    @classmethod
    def from_dict(cls, d: dict) -> MemoryEstimate:
        return cls(**{k: int(d[k]) for k in cls.__dataclass_fields__})

    def breakdown(self) -> str:
        return (
            f"parameters {fmt_bytes(self.parameters)}, gradients {fmt_bytes(self.gradients)}, "
            f"optimizer {fmt_bytes(self.optimizer_state)}, activations at batch "
            f"{self.batch_size} {fmt_bytes(self.activations)}, evaluation "
            f"{fmt_bytes(self.evaluation)}, data {fmt_bytes(self.data)}"
        )


def fmt_bytes(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# -- the cache ------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Per user, beside the remote mirrors: the estimate depends on the config and torch, not on
    the study, and a read-only command must not write into a study that has not run."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fnotui" / "memory"


def estimate_key(cfg: ArmConfig) -> str:
    d = cfg.to_dict()
    relevant = {
        "model": d["model"],
        "data": d["data"],
        "train": {k: d["train"][k] for k in _TRAIN_KEYS},
        "torch": _torch_version(),
        "version": ESTIMATE_VERSION,
        "code": _code_digest(),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:24]


@functools.cache
def _code_digest() -> str:
    """The generators' and the estimator's source: a checkout that changes a model makes its
    cached estimates stale, so they are part of the key."""
    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "models").glob("*.py")) + [root / "training" / "memory_estimate.py"]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def _torch_version() -> str:
    # once per process: importlib.metadata scans sys.path on every call (~3 ms each, 200 of
    # them for a 200-run study, while the dashboard's first frame is being drawn)
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "unknown"


def _cached_by_key(key: str) -> MemoryEstimate | None:
    try:
        return MemoryEstimate.from_dict(json.loads((cache_dir() / f"{key}.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(cfg: ArmConfig, estimate: MemoryEstimate) -> None:
    try:
        atomic_write_json(cache_dir() / f"{estimate_key(cfg)}.json", estimate.to_dict())
    except OSError:
        pass  # a read-only home: the estimate is traced again next time, nothing else lost


def estimates(cfgs: dict[str, ArmConfig], compute: bool = True) -> dict[str, MemoryEstimate | str]:
    """Each arm's estimate, from the cache, else traced (once per distinct config, all in one
    child process so that the caller never imports torch). An arm whose trace failed maps to
    the reason, a string; with ``compute=False`` the uncached arms are left out."""
    # Each config hashed once, each distinct one looked up once: the points of a seed sweep
    # share one estimate.
    keys = {name: estimate_key(cfg) for name, cfg in cfgs.items()}
    by_key: dict[str, MemoryEstimate | str | None] = {
        k: _cached_by_key(k) for k in set(keys.values())
    }
    missing = {k: cfgs[n] for n, k in keys.items() if by_key[k] is None}
    if missing and compute:
        traced = _trace_in_child(list(missing.values()))
        by_key.update({k: traced.get(k, "no estimate") for k in missing})
    return {name: by_key[k] for name, k in keys.items() if by_key[k] is not None}


def _trace_in_child(cfgs: list[ArmConfig]) -> dict[str, MemoryEstimate | str]:
    """key -> the estimate, or why it could not be made, from one child process that imports
    torch. The child's stdout carries the estimates, so an unwritable cache loses nothing."""
    repo = Path(__file__).resolve().parents[2]
    print(
        f"fnotui: estimating the memory of {len(cfgs)} generator config(s) "
        "(once per config, cached)",
        file=sys.stderr,
        flush=True,
    )
    try:
        out = subprocess.run(
            [sys.executable, "-m", "engine.training.memory_estimate"],
            input=json.dumps([c.to_dict() for c in cfgs]),
            capture_output=True,
            text=True,
            cwd=repo,
            timeout=TRACE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {estimate_key(c): f"not traced within {TRACE_TIMEOUT_S:g} s" for c in cfgs}
    traced: dict[str, MemoryEstimate | str] = {}
    for line in out.stdout.splitlines():
        try:
            row = json.loads(line)
            if row.get("error"):
                traced[row["key"]] = str(row["error"])
            else:
                traced[row["key"]] = MemoryEstimate.from_dict(row["estimate"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a stray line (a warning): not ours
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["the estimate process failed"])[-1]
        for cfg in cfgs:
            traced.setdefault(estimate_key(cfg), reason)
    return traced


# -- capacity and refusal ---------------------------------------------------------------------


def device_capacity(device: str) -> int:
    """Bytes the device has for runs: a GPU's total memory; on the CPU the host's total memory
    or the smaller limit this process lives under (cgroup, RLIMIT_AS). Totals, not what is free
    now, on both: a queued engine is checked before it waits for its slot, and the memory the
    runs ahead of it hold is free again by the time it trains."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    return host_memory_total()


def host_memory_total() -> int:
    """The host's memory, or the smaller limit this process lives under."""
    limits = (_meminfo("MemTotal"), _read_int(Path("/sys/fs/cgroup/memory.max")), _rlimit_as())
    return min((x for x in limits if x is not None), default=sys.maxsize)


def _rlimit_as() -> int | None:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" means no limit


def check_fits(cfgs: list[ArmConfig], devices: list[str]) -> dict[str, MemoryEstimate | str]:
    """Raise ConfigError naming the first arm whose estimate exceeds the memory of every device
    it may train on; return every arm's estimate (or why there is none: then nothing is refused
    for it, the run itself will tell). The missing estimates are traced in one child process."""
    found = estimates({cfg.name: cfg for cfg in cfgs})
    room = {d: device_capacity(d) for d in devices}
    best = max(room, key=room.get)
    for cfg in cfgs:
        estimate = found.get(cfg.name)
        if isinstance(estimate, MemoryEstimate) and estimate.total > room[best]:
            what = "host memory" if best == "cpu" else f"{best}'s memory"
            raise ConfigError(
                f"arm {cfg.name!r} needs an estimated {fmt_bytes(estimate.total)} "
                f"({estimate.breakdown()}), more than the {fmt_bytes(room[best])} of {what}; "
                f"lower train.batch_size or the generator's size, or try anyway with --force"
            )
    return found


# -- out of memory ------------------------------------------------------------------------------

# "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1234 bytes" (the CPU) and
# "CUDA out of memory. Tried to allocate 2.00 GiB" (the caching allocator).
_CPU_BYTES = re.compile(r"tried to allocate (\d+) bytes", re.IGNORECASE)
_CUDA_SIZE = re.compile(r"Tried to allocate ([\d.]+) (B|KiB|MiB|GiB|TiB)")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """A host MemoryError, torch.cuda.OutOfMemoryError (a RuntimeError subclass) or an
    allocator's RuntimeError."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


def oom_details(exc: BaseException, device: str) -> dict:
    """The status fields of an out-of-memory run: the failed allocation's size (None when the
    message does not say) and the device's capacity."""
    message = str(exc)
    requested = None
    if m := _CPU_BYTES.search(message):
        requested = int(m.group(1))
    elif m := _CUDA_SIZE.search(message):
        requested = int(float(m.group(1)) * _UNITS[m.group(2)])
    try:
        capacity = device_capacity(device) if device.startswith("cuda") else host_memory_total()
    except Exception:  # the device may be what failed; the size alone is still worth recording
        capacity = None
    return {"oom_bytes_requested": requested, "device_capacity_bytes": capacity}
