"""Regenerate the labelled detector corpus in tests/fixtures/traces/ (manifest.json + JSONL traces).

Two sources, both seeded:

- **real**: short CPU training runs of a tiny study (`python -m app.cli --run`), a few seconds each:
  healthy arms at their default learning rates, and arms pushed into constant-output collapse or
  non-finite losses with large learning rates. Their live detector ``event`` records are dropped,
  so the corpus holds the raw signal and ``scripts/detector_quality.py`` replays whatever the
  current detectors do.
- **synthetic**: traces drawn from a small generative model of a training run (exponential loss
  decay, Adam's epoch sawtooth, log-normal and heavy-tailed grad-norm noise), with the failure
  injected at a known step or epoch: spike-and-recover, abrupt and gradual constant-output
  collapse, slow and fast divergence, NaN.

Labels describe what happened, not what a detector said. ``expect`` maps each rule that must fire
to the onset of its condition; ``allow`` lists rules whose firing is legitimate but not required
(e.g. divergence on a collapsed run whose loss jumped); any other firing is a false alarm.
Onset criteria, applied identically to real and synthetic traces:

- constant-output collapse: the first epoch from which the predicted-amplitude spread stays below
  1 % of the ground truth's (``COLLAPSE_LABEL_RATIO``) to the end of the run;
- divergence: the first epoch of the injected rise (synthetic only);
- non-finite: the first step (epoch) whose loss or grad norm (validation loss) is NaN or inf;
- spike: the injected step.

Run: python scripts/make_trace_corpus.py  (about a minute on two cores; rewrites the folder)
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runs.schema import SCHEMA  # noqa: E402
from engine.runs.telemetry import ReadStats, encode_record, iter_records  # noqa: E402
from tests.cli import fnotui  # noqa: E402
from tests.cli import sets as set_flags  # noqa: E402
from tests.tiny import TINY_WARM_ARM, tiny_study_toml  # noqa: E402

CORPUS = REPO / "tests" / "fixtures" / "traces"
COLLAPSE_LABEL_RATIO = 1e-2

TINY_STUDY = tiny_study_toml(
    "corpus",
    {
        "cnn": {"architecture": "cnn"},
        "hybrid": {"architecture": "hybrid"},
        "fno": {"architecture": "fno"},
        "stable": TINY_WARM_ARM,
    },
    data={"train_stride": 4, "set_phi": True},
    epochs=12,
    batch_size=4,
    infer_batch_size=8,
    seed=3,
)

# name -> (arm, --set overrides, kind, description)
REAL_RUNS = {
    "real_healthy_cnn": ("cnn", [], "healthy", "tiny U-Net, Adam 1e-3"),
    "real_healthy_hybrid": ("hybrid", [], "healthy", "tiny U-NO hybrid, Adam 1e-3"),
    "real_healthy_fno": ("fno", [], "healthy", "tiny cascaded FNO, Adam 1e-3"),
    "real_healthy_stable_warmup": (
        "stable",
        [],
        "healthy",
        "tiny stable hybrid, WarmupCosine 2e-3, norm clip 1",
    ),
    "real_collapse_cnn_lr005": (
        "cnn",
        ["lr=0.05"],
        "collapse",
        "tiny U-Net at lr 0.05: constant output almost at once",
    ),
    "real_collapse_cnn_lr1": (
        "cnn",
        ["lr=1.0"],
        "collapse",
        "tiny U-Net at lr 1: loss and grad spikes, then constant output",
    ),
    "real_healthy_hybrid_lr002": (
        "hybrid",
        ["lr=0.02"],
        "healthy",
        "tiny hybrid at lr 0.02: noisy, val loss bounces 17 % above its best and recovers",
    ),
    "real_collapse_fno_lr01": (
        "fno",
        ["lr=0.1"],
        "collapse",
        "tiny FNO at lr 0.1: constant output (spread ~1e-9) from epoch 2",
    ),
    "real_collapse_stable_lr005": (
        "stable",
        ["lr=0.05", "grad_clip=0.0"],
        "collapse",
        "tiny stable hybrid at lr 0.05, no clipping: spread settles "
        "at ~0.3 % of the target from epoch 4",
    ),
    "real_nan_hybrid_sgd_lr10": (
        "hybrid",
        ["lr=10.0", "optimizer=sgd"],
        "nan",
        "tiny hybrid, SGD at lr 10, no clipping: non-finite at once",
    ),
    "real_nan_stable_sgd_lr2": (
        "stable",
        ["lr=2.0", "optimizer=sgd", "grad_clip=0.0"],
        "nan",
        "tiny stable hybrid, SGD at lr 2 with warmup, no clipping: "
        "finite first, non-finite as the lr ramps up",
    ),
}


def run_real(workdir: Path) -> list[tuple[str, list[dict], str, str]]:
    arms = workdir / "arms.toml"
    arms.write_text(TINY_STUDY)
    out = []
    for name, (arm, overrides, kind, description) in REAL_RUNS.items():
        dest = workdir / name
        run = ("--arms", str(arms), "--run", arm, "--out", str(dest), *set_flags(*overrides))
        proc = fnotui(*run, cwd=REPO, timeout=None)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{name}: fnotui exited {proc.returncode}\n{proc.stderr}")
        stats = ReadStats()
        records = [
            r
            for r in iter_records(dest / arm / "telemetry.jsonl", stats)
            if r.get("type") != "event"
        ]
        description += f" (--set {' '.join(overrides) or 'none'})"
        if stats.bad_lines:  # said, not hidden: the corpus holds what the reader could decode
            description += (
                f"; {stats.bad_lines} telemetry line(s) of the run were unreadable "
                f"by engine.runs.telemetry and are missing here"
            )
        out.append((name, records, kind, description))
    return out


# ------------------------------------------------------------------------------------------
# synthetic traces


class Synth:
    """A seeded generative model of one run's telemetry (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        epochs: int = 24,
        steps_per_epoch: int = 24,
        loss0: float = 0.45,
        loss_inf: float = 0.12,
        tau: float = 4.0,
        loss_noise: float = 0.06,
        sawtooth: float = 0.08,
        grad0: float = 1.2,
        grad_noise: float = 0.3,
        heavy_tail: bool = False,
        target_std: float = 0.2,
        start_ratio: float = 0.35,
    ):
        self.rng = np.random.default_rng(seed)
        self.epochs, self.spe = epochs, steps_per_epoch
        self.loss0, self.loss_inf, self.tau = loss0, loss_inf, tau
        self.loss_noise, self.sawtooth = loss_noise, sawtooth
        self.grad0, self.grad_noise, self.heavy_tail = grad0, grad_noise, heavy_tail
        self.target_std, self.start_ratio = target_std, start_ratio
        n = epochs * steps_per_epoch
        frac = np.arange(n) / steps_per_epoch
        within = np.arange(n) % steps_per_epoch
        base = loss_inf + (loss0 - loss_inf) * np.exp(-frac / tau)
        bump = 1.0 + sawtooth * np.exp(-within / (0.2 * steps_per_epoch))
        self.loss = base * bump * np.exp(self.rng.normal(0.0, loss_noise, n))
        g_noise = (
            self.rng.standard_t(4, n) * grad_noise / math.sqrt(2.0)
            if heavy_tail
            else self.rng.normal(0.0, grad_noise, n)
        )
        self.grad = grad0 * (0.4 + 0.6 * np.exp(-frac / (2 * tau))) * np.exp(g_noise)
        epochs_f = np.arange(epochs) + 1.0
        self.val = (loss_inf * 0.92 + (loss0 - loss_inf) * 0.9 * np.exp(-epochs_f / tau)) * np.exp(
            self.rng.normal(0.0, 0.015, epochs)
        )
        self.pred_std = (
            target_std
            * (start_ratio + (0.9 - start_ratio) * (1 - np.exp(-epochs_f / 3.0)))
            * np.exp(self.rng.normal(0.0, 0.03, epochs))
        )
        self.lr = np.full(epochs, 1e-3)

    def records(self, arm: str) -> list[dict]:
        t0 = 1.8e9
        header = {
            "type": "header",
            "schema": SCHEMA,
            "arm": arm,
            "synthetic": True,
            "config": {"train": {"epochs": self.epochs}},
            "steps_per_epoch": self.spe,
            "target_amp_std": self.target_std,
            "pid": 1,
            "start_time": t0,
            "t": t0,
        }
        out = [header]
        for e in range(self.epochs):
            sl = slice(e * self.spe, (e + 1) * self.spe)
            for i, (loss, g) in enumerate(zip(self.loss[sl], self.grad[sl])):
                step = e * self.spe + i
                out.append(
                    {
                        "type": "step",
                        "epoch": e,
                        "step": step,
                        "loss": _short(loss),
                        "grad_norm": _short(g),
                        "lr": float(self.lr[e]),
                        "t": round(t0 + step * 0.1, 1),
                    }
                )
            finite_g = self.grad[sl][np.isfinite(self.grad[sl])]
            out.append(
                {
                    "type": "epoch",
                    "epoch": e,
                    "step": (e + 1) * self.spe,
                    "train_loss": float(np.mean(self.loss[sl])),
                    "val_loss": float(self.val[e]),
                    "grad_norm": float(finite_g.mean()) if finite_g.size else math.nan,
                    "lr": float(self.lr[e]),
                    "pred_amp_std": float(self.pred_std[e]),
                    "target_amp_std": self.target_std,
                    "t": t0 + (e + 1) * self.spe * 0.1,
                }
            )
        out.append(
            {
                "type": "status",
                "state": "finished",
                "exit_code": 0,
                "epochs_done": self.epochs,
                "t": t0 + self.epochs * self.spe * 0.1,
            }
        )
        return out

    def step_index(self, epoch: int, within: int) -> int:
        return epoch * self.spe + within


def synthetic() -> list[tuple[str, list[dict], dict]]:
    """(name, records, label) for every synthetic trace."""
    traces = []

    def add(name, s: Synth, kind, description, expect=None, allow=()):
        traces.append(
            (
                name,
                s.records(name),
                {
                    "kind": kind,
                    "description": description,
                    "expect": expect or {},
                    "allow": sorted(allow),
                },
            )
        )

    # Healthy: the usual sawtooth and noise, with variations that tempt each rule.
    add(
        "synth_healthy_mild",
        Synth(seed=1),
        "healthy",
        "smooth decay, mild noise, Adam epoch sawtooth",
        allow={"plateau"},
    )
    add(
        "synth_healthy_noisy",
        Synth(seed=2, loss_noise=0.15, sawtooth=0.25, grad_noise=0.45, heavy_tail=True),
        "healthy",
        "noisy small-batch run: strong sawtooth, heavy-tailed (Student-t, 4 dof) grad norms",
        allow={"plateau"},
    )
    add(
        "synth_healthy_slow_start",
        Synth(seed=3, start_ratio=0.08, tau=6.0),
        "healthy",
        "output spread starts at 8 % of the target and grows over ~3 epochs",
        allow={"plateau"},
    )
    s = Synth(seed=4, epochs=30)
    level = float(s.val[7])
    s.val[8:] = level * (1.0 + np.abs(s.rng.normal(0.0, 0.004, 22)))
    add(
        "synth_healthy_plateau",
        s,
        "healthy",
        "val loss flat (never a new best) from epoch 8 on: the plateau note is expected",
        expect={"plateau": {"epoch": 8}},
    )

    # Spike and recover: one bad batch, the run carries on.
    s = Synth(seed=5)
    at = s.step_index(9, 13)
    s.loss[at] *= 25.0
    s.grad[at] *= 60.0
    add(
        "synth_spike_recover",
        s,
        "spike",
        "one step with loss x25 and grad norm x60 at epoch 9, then normal training",
        expect={"loss_spike": {"epoch": 9, "step": at}, "grad_spike": {"epoch": 9, "step": at}},
        allow={"plateau"},
    )
    s = Synth(seed=6, heavy_tail=True)
    at = s.step_index(12, 5)
    s.grad[at] *= 40.0
    s.loss[at + 1] *= 12.0
    s.val[12] *= 1.3
    add(
        "synth_grad_leads_loss_spike",
        s,
        "spike",
        "grad norm x40 one step before a loss x12 (OLMo 2: grad spikes lead), val bumps once",
        expect={
            "grad_spike": {"epoch": 12, "step": at},
            "loss_spike": {"epoch": 12, "step": at + 1},
        },
        allow={"plateau"},
    )

    # Constant-output collapse.
    s = Synth(seed=7)
    k = 6
    best = float(s.val[:k].min())
    pre = s.step_index(k - 1, 20)
    s.loss[pre : pre + 3] *= np.array([8.0, 30.0, 12.0])
    s.grad[pre : pre + 3] *= np.array([20.0, 150.0, 40.0])
    after = slice(s.step_index(k - 1, 23), None)
    s.loss[after] = 0.42 * np.exp(s.rng.normal(0.0, 0.02, len(s.loss[after])))
    s.val[k:] = 4.0 * best * np.exp(s.rng.normal(0.0, 0.005, s.epochs - k))
    s.pred_std[k:] = s.target_std * 1e-5 * np.exp(s.rng.normal(0.0, 0.5, s.epochs - k))
    add(
        "synth_collapse_abrupt",
        s,
        "collapse",
        "best val early; loss and grad spikes at the end of epoch 5; from epoch 6 a constant "
        "output (spread 1e-5 x target) and val on a plateau 4x its best",
        expect={"output_collapse": {"epoch": k}},
        allow={"divergence", "loss_spike", "grad_spike", "plateau"},
    )
    s = Synth(seed=8)
    k = 10
    s.pred_std[k:] = s.pred_std[k - 1] * 0.1 ** np.arange(1, s.epochs - k + 1).clip(max=6).astype(
        float
    )
    s.val[k:] *= np.linspace(1.05, 1.4, s.epochs - k)
    onset = _collapse_onset(s.pred_std, s.target_std)
    add(
        "synth_collapse_gradual",
        s,
        "collapse",
        "output spread shrinks 10x per epoch from epoch 10 while val loss rises only ~1.4x: "
        "invisible to the loss rules",
        expect={"output_collapse": {"epoch": onset}},
        allow={"plateau"},
    )
    s = Synth(seed=9, start_ratio=0.5)
    s.pred_std[:] = s.target_std * 3e-6 * np.exp(s.rng.normal(0.0, 0.3, s.epochs))
    s.val[:] = 0.39 * np.exp(s.rng.normal(0.0, 0.003, s.epochs))
    s.loss[:] = 0.41 * np.exp(s.rng.normal(0.0, 0.05, len(s.loss)))
    add(
        "synth_collapse_from_start",
        s,
        "collapse",
        "constant output from the first epoch (as a too-large lr does at once)",
        expect={"output_collapse": {"epoch": 0}},
        allow={"plateau", "divergence"},
    )

    # Divergence without constant output.
    slow = "from epoch 8 val and train loss grow 12 % per epoch, output spread stays healthy"
    fast = "from epoch 7 every loss doubles per epoch"
    for seed, epochs, k, rate, grad_power, name, description in (
        (10, 30, 8, 1.12, 0.5, "slow", slow),
        (11, 24, 7, 2.0, 1.0, "fast", fast),
    ):
        s = Synth(seed=seed, epochs=epochs)
        rise = rate ** np.arange(1, s.epochs - k + 1)
        s.val[k:] = s.val[k - 1] * rise
        for e in range(k, s.epochs):
            s.loss[e * s.spe : (e + 1) * s.spe] *= rise[e - k]
            s.grad[e * s.spe : (e + 1) * s.spe] *= rise[e - k] ** grad_power
        add(
            f"synth_divergence_{name}",
            s,
            "divergence",
            description,
            expect={"divergence": {"epoch": k}},
            allow={"plateau", "grad_spike", "loss_spike"},
        )

    # Non-finite values.
    s = Synth(seed=12)
    at = s.step_index(11, 17)
    s.loss[at:] = np.nan
    s.grad[at:] = np.nan
    s.val[11:] = np.nan
    s.pred_std[11:] = np.nan
    add(
        "synth_nan",
        s,
        "nan",
        "loss and grad norm NaN from a step of epoch 11 to the end",
        expect={
            "nonfinite_loss": {"epoch": 11, "step": at},
            "nonfinite_grad": {"epoch": 11, "step": at},
            "nonfinite_val": {"epoch": 11},
        },
        allow={"plateau", "loss_spike", "grad_spike"},
    )
    s = Synth(seed=13)
    at = s.step_index(5, 3)
    s.grad[at] = np.inf
    add(
        "synth_inf_grad_once",
        s,
        "nan",
        "one step's grad norm is inf (an fp16 overflow skipped by a scaler), loss stays finite",
        expect={"nonfinite_grad": {"epoch": 5, "step": at}},
        allow={"plateau"},
    )
    return traces


def _collapse_onset(pred_std, target_std) -> int | None:
    """First epoch from which the spread stays below COLLAPSE_LABEL_RATIO x target to the end."""
    low = [bool(np.isfinite(v) and v < COLLAPSE_LABEL_RATIO * target_std) for v in pred_std]
    onset = None
    for e in range(len(low) - 1, -1, -1):
        if not low[e]:
            break
        onset = e
    return onset


# ------------------------------------------------------------------------------------------
# labels of real runs


def label_real(records: list[dict], kind: str) -> dict:
    """Label a real trace with the onset criteria of the module docstring."""
    header = next(r for r in records if r.get("type") == "header")
    epochs = [r for r in records if r.get("type") == "epoch"]
    steps = [r for r in records if r.get("type") == "step"]
    expect: dict = {}
    allow = {"plateau"}
    if kind == "collapse":
        onset = _collapse_onset(
            [_num(r.get("pred_amp_std")) for r in epochs], float(header["target_amp_std"])
        )
        if onset is None:
            spread = [_num(r.get("pred_amp_std")) for r in epochs]
            raise SystemExit(
                f"a real 'collapse' run did not collapse (pred_amp_std per epoch "
                f"{spread}): fix REAL_RUNS"
            )
        expect["output_collapse"] = {"epoch": onset}
        allow |= {"divergence", "loss_spike", "grad_spike"}
    elif kind == "nan":
        bad_loss = next((r for r in steps if not _finite(r.get("loss"))), None)
        bad_grad = next(
            (
                r
                for r in steps
                if r.get("grad_norm") is not None and not _finite(r.get("grad_norm"))
            ),
            None,
        )
        bad_val = next((r for r in epochs if not _finite(r.get("val_loss"))), None)
        if bad_loss is None and bad_grad is None:
            raise SystemExit("a real 'nan' run stayed finite: fix REAL_RUNS")
        for rule, r in (("nonfinite_loss", bad_loss), ("nonfinite_grad", bad_grad)):
            if r is not None:
                expect[rule] = {"epoch": r["epoch"], "step": r["step"]}
        if bad_val is not None:
            expect["nonfinite_val"] = {"epoch": bad_val["epoch"]}
        allow |= {"divergence", "loss_spike", "grad_spike", "output_collapse"}
    elif kind != "healthy":
        raise ValueError(kind)
    return {"expect": expect, "allow": sorted(allow)}


def _short(x) -> float:
    """Six significant digits keep the corpus small; the detectors see these values exactly."""
    return float(f"{float(x):.6g}")


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def write_trace(path: Path, records: list[dict]) -> None:
    path.write_text("".join(encode_record(r) for r in records), encoding="utf-8")


def main() -> None:
    entries = []
    staging = Path(tempfile.mkdtemp(prefix="traces-"))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, records, kind, description in run_real(Path(tmp)):
                try:
                    label = label_real(records, kind)
                except SystemExit as exc:
                    raise SystemExit(f"{name}: {exc}") from None
                write_trace(staging / f"{name}.jsonl", records)
                entries.append(
                    {
                        "file": f"{name}.jsonl",
                        "source": "real",
                        "kind": kind,
                        "description": description,
                        **label,
                    }
                )
        for name, records, label in synthetic():
            write_trace(staging / f"{name}.jsonl", records)
            entries.append({"file": f"{name}.jsonl", "source": "synthetic", **label})
        manifest = {
            "about": "Labelled telemetry traces for scripts/detector_quality.py; regenerate "
            "with scripts/make_trace_corpus.py. expect: rule -> onset of its "
            "condition (0-based epoch, and step for step rules); allow: rules that "
            "may fire without counting as a false alarm.",
            "collapse_label_ratio": COLLAPSE_LABEL_RATIO,
            "traces": entries,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if CORPUS.exists():
            shutil.rmtree(CORPUS)
        shutil.copytree(staging, CORPUS)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(p.stat().st_size for p in CORPUS.iterdir())
    print(f"wrote {len(entries)} traces to {CORPUS} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
