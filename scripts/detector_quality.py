"""Measure the detectors on the labelled corpus and write docs/detectors.md.

Every trace in tests/fixtures/traces/ is replayed through ``engine.scoring.detectors.detect_run`` with the
default thresholds (``DetectConfig()``, i.e. engine/config.py DETECT_KNOBS), exactly as the engine
would have fired live. Per rule, at trace level:

- a *positive* trace lists the rule in ``expect`` with the onset of its condition;
- a positive is *detected* when the rule fires anywhere in it; its delay is the first firing's
  epoch minus the onset epoch (and in steps, for step rules); a negative delay is an early firing;
- a *false alarm* is a firing on a trace that neither expects nor allows the rule;
- precision = detected / (detected + false alarms), recall = detected / positives.

Targets (issue 5): no warning, collapse or fatal firing on any healthy trace, and every collapse
trace flagged by a collapse rule (output_collapse or divergence) within 2 epochs of its onset.

Generated, never typed: tests/engine/test_detector_corpus.py fails when docs/detectors.md is stale.
Run: python scripts/detector_quality.py
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import DETECT_KNOBS, DetectConfig  # noqa: E402
from engine.runs.telemetry import iter_records  # noqa: E402
from engine.scoring.detectors import COLLAPSE_RULES, Event, detect_run  # noqa: E402

CORPUS = REPO / "tests" / "fixtures" / "traces"
DOC = REPO / "docs" / "detectors.md"
RULES = (
    "nonfinite_loss",
    "nonfinite_grad",
    "nonfinite_val",
    "loss_spike",
    "grad_spike",
    "divergence",
    "output_collapse",
    "plateau",
)
ALARM_SEVERITIES = ("warning", "collapse", "fatal")
COLLAPSE_DELAY_TARGET = 2  # epochs


@dataclass
class TraceResult:
    file: str
    kind: str
    source: str
    description: str
    expect: dict
    allow: list[str]
    events: list[Event]

    def first(self, rule: str) -> Event | None:
        return next((e for e in self.events if e.rule == rule), None)

    @property
    def false_alarms(self) -> list[Event]:
        return [e for e in self.events if e.rule not in self.expect and e.rule not in self.allow]

    @property
    def healthy_alarms(self) -> list[Event]:
        return (
            [e for e in self.events if e.severity in ALARM_SEVERITIES]
            if self.kind == "healthy"
            else []
        )

    def collapse_delay(self) -> int | None:
        """Epochs from the collapse onset to the first collapse-rule firing (None: missed)."""
        onset = self.expect["output_collapse"]["epoch"]
        fired = [e.epoch for e in self.events if e.rule in COLLAPSE_RULES]
        return min(fired) - onset if fired else None


@dataclass
class RuleScore:
    rule: str
    positives: int = 0
    detected: int = 0
    false_alarms: int = 0
    delays: list[int] = field(default_factory=list)
    step_delays: list[int] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        fired = self.detected + self.false_alarms
        return self.detected / fired if fired else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.positives if self.positives else None


def load_manifest(corpus: Path = CORPUS) -> dict:
    return json.loads((corpus / "manifest.json").read_text())


def evaluate(corpus: Path = CORPUS, cfg: DetectConfig | None = None) -> list[TraceResult]:
    cfg = cfg or DetectConfig()
    out = []
    for t in load_manifest(corpus)["traces"]:
        events = detect_run(iter_records(corpus / t["file"]), cfg)
        out.append(
            TraceResult(
                t["file"], t["kind"], t["source"], t["description"], t["expect"], t["allow"], events
            )
        )
    return out


def score(results: list[TraceResult]) -> dict[str, RuleScore]:
    scores = {r: RuleScore(r) for r in RULES}
    for t in results:
        for rule, s in scores.items():
            first = t.first(rule)
            if rule in t.expect:
                s.positives += 1
                if first is not None:
                    s.detected += 1
                    s.delays.append(first.epoch - t.expect[rule]["epoch"])
                    if "step" in t.expect[rule]:
                        s.step_delays.append(first.step - t.expect[rule]["step"])
            elif first is not None and rule not in t.allow:
                s.false_alarms += 1
    return scores


def targets(results: list[TraceResult]) -> dict:
    """The two acceptance targets, with the traces that break them."""
    healthy = [t for t in results if t.kind == "healthy"]
    collapse = [t for t in results if t.kind == "collapse"]
    noisy = {
        t.file: [f"{e.rule}@{e.epoch}" for e in t.healthy_alarms]
        for t in healthy
        if t.healthy_alarms
    }
    late = {
        t.file: t.collapse_delay()
        for t in collapse
        if t.collapse_delay() is None or t.collapse_delay() > COLLAPSE_DELAY_TARGET
    }
    return {
        "healthy_traces": len(healthy),
        "healthy_with_alarms": noisy,
        "collapse_traces": len(collapse),
        "collapse_late_or_missed": late,
        "no_false_alarm_on_healthy": not noisy,
        "collapse_within_target": not late,
    }


# The output-collapse knobs swept in the sensitivity table (the defaults are always included).
SWEEP = {
    "collapse_std_ratio": (0.05, 0.02, 0.01, 0.005, 0.001),
    "collapse_patience": (2, 3),
    "warmup_epochs": (1, 2),
}


def sensitivity(corpus: Path = CORPUS) -> list[dict]:
    """The two targets under every combination of the SWEEP knobs."""
    default = DetectConfig()
    grids = {k: sorted(set(v) | {getattr(default, k)}) for k, v in SWEEP.items()}
    rows = []
    for values in itertools.product(*grids.values()):
        knobs = dict(zip(grids, values))
        results = evaluate(corpus, dataclasses.replace(default, **knobs))
        tg = targets(results)
        delays = [t.collapse_delay() for t in results if t.kind == "collapse"]
        found = [d for d in delays if d is not None]
        rows.append(
            {
                **knobs,
                "default": all(getattr(default, k) == v for k, v in knobs.items()),
                "healthy_alarms": len(tg["healthy_with_alarms"]),
                "collapse_missed": sum(d is None for d in delays),
                "collapse_late": sum(d is not None and d > COLLAPSE_DELAY_TARGET for d in delays),
                "max_delay": max(found) if found else None,
                "ok": tg["no_false_alarm_on_healthy"] and tg["collapse_within_target"],
            }
        )
    return rows


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _delays(values: list[int]) -> str:
    if not values:
        return "—"
    v = sorted(values)
    med = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    return f"{med:g} / {v[-1]}" if len(v) > 1 else f"{v[0]}"


RATIONALE = """\
## The rules and why they look the way they do

Each rule is a small state machine over one signal, with a warm-up, a patience and hysteresis
(engine/scoring/detectors.py), fed live by the training loop and replayed by the exporter, so the console,
the dashboard and the reports share one truth.

| rule | signal | fires when | lineage |
|---|---|---|---|
| `nonfinite_loss`, `nonfinite_grad`, `nonfinite_val` | step loss, pre-clip grad norm, val loss | NaN or inf, at once | Keras TerminateOnNaN, Composer NaNMonitor |
| `loss_spike` | step loss | z-score over the previous `loss_spike_window` steps > `loss_spike_z` | OLMo-core's spike skipping (z > 6 over 128 values after 64) |
| `grad_spike` | log pre-clip grad norm | EMA z-score > `grad_spike_z`; spikes enter the EMA clipped | ZClip (arXiv 2504.02507) |
| `divergence` | val loss | > `divergence_factor` x its best for `divergence_patience` epochs | the study's "best early, then a high plateau" |
| `output_collapse` | std of predicted amplitude / GT's | < `collapse_std_ratio` for `collapse_patience` epochs | SimSiam / VICReg collapse monitors |
| `plateau` | val loss | no relative gain > `plateau_min_delta` for `plateau_patience` epochs (info) | ReduceLROnPlateau defaults |

Adam's loss bumps at every epoch boundary and small nets have noisy step losses, so the step rules
use long windows and log-space statistics instead of jump-against-previous-step tests, which fire
constantly on such runs. Grad norms differ by orders of magnitude between arms, so the grad rule
is a z-score against the arm's own history, never a fixed threshold; grad-norm spikes tend to
come a step before loss spikes, so the dashboard shows the two curves together.

`output_collapse` compares the predicted amplitude's spread with the ground truth's on the same
fixed batch of test patches (`target_amp_std` in the telemetry header, docs/telemetry.md), so its
threshold is a ratio that does not depend on the object's scale. No rule here sees a run that
reconstructs the twin of the object: its loss and output spread look healthy. The final
evaluation's twin fraction names such runs (docs/twin.md).
"""


def render(
    results: list[TraceResult] | None = None, sensitivity_rows: list[dict] | None = None
) -> str:
    results = results if results is not None else evaluate()
    scores = score(results)
    tg = targets(results)
    cfg = DetectConfig()
    lines = [
        "# Detector quality",
        "",
        "*Generated by `scripts/detector_quality.py` from the labelled corpus in "
        "`tests/fixtures/traces/` (regenerate the corpus with `scripts/make_trace_corpus.py`); "
        "do not edit by hand.*",
        "",
        f"{len(results)} traces: "
        + ", ".join(
            f"{sum(t.kind == k for t in results)} {k}"
            for k in ("healthy", "spike", "collapse", "divergence", "nan")
        )
        + f" ({sum(t.source == 'real' for t in results)} "
        "from real tiny CPU training runs, the rest synthetic). Every trace is replayed through "
        "`engine.scoring.detectors.detect_run` with the default thresholds below.",
        "",
        "## Targets",
        "",
        f"- No warning, collapse or fatal firing on any healthy trace: "
        f"**{'met' if tg['no_false_alarm_on_healthy'] else 'NOT met'}** "
        f"({tg['healthy_traces']} healthy traces"
        + (
            ", alarms: "
            + "; ".join(f"`{f}` {', '.join(a)}" for f, a in tg["healthy_with_alarms"].items())
            if tg["healthy_with_alarms"]
            else ""
        )
        + ").",
        f"- Every collapse flagged (output_collapse or divergence) within "
        f"{COLLAPSE_DELAY_TARGET} epochs of onset: "
        f"**{'met' if tg['collapse_within_target'] else 'NOT met'}** "
        f"({tg['collapse_traces']} collapse traces"
        + (
            ", late or missed: "
            + "; ".join(
                f"`{f}` {'missed' if d is None else f'{d} epochs'}"
                for f, d in tg["collapse_late_or_missed"].items()
            )
            if tg["collapse_late_or_missed"]
            else ""
        )
        + ").",
        "",
        "## Per rule",
        "",
        "Trace-level counts. Delay = first firing minus labelled onset, in epochs "
        "(median / max over detected traces; negative = fired before the labelled onset); "
        "step rules also in optimizer steps.",
        "",
        "| rule | positives | detected | false alarms | precision | recall | delay, epochs "
        "| delay, steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        s = scores[rule]
        lines.append(
            f"| `{rule}` | {s.positives} | {s.detected} | {s.false_alarms} | "
            f"{_fmt(s.precision)} | {_fmt(s.recall)} | {_delays(s.delays)} | "
            f"{_delays(s.step_delays)} |"
        )
    lines += [
        "",
        "## Per trace",
        "",
        "Onsets and firings as 0-based epochs (`rule@epoch`, step rules `rule@epoch:step`).",
        "",
        "| trace | source | kind | expected (onset) | fired | false alarms |",
        "|---|---|---|---|---|---|",
    ]
    for t in results:
        exp = (
            ", ".join(
                f"`{r}`@{o['epoch']}" + (f":{o['step']}" if "step" in o else "")
                for r, o in t.expect.items()
            )
            or "—"
        )
        fired = (
            ", ".join(
                f"`{e.rule}`@{e.epoch}"
                + (
                    f":{e.step}"
                    if e.rule in ("loss_spike", "grad_spike", "nonfinite_loss", "nonfinite_grad")
                    else ""
                )
                for e in t.events
            )
            or "—"
        )
        fa = ", ".join(f"`{e.rule}`@{e.epoch}" for e in t.false_alarms) or "—"
        lines.append(f"| `{t.file}` | {t.source} | {t.kind} | {exp} | {fired} | {fa} |")
    lines += ["", "Traces:", ""]
    lines += [f"- `{t.file}`: {t.description}" for t in results]
    lines += [
        "",
        "## Sensitivity of the output-collapse rule",
        "",
        "The same corpus replayed with other `output_collapse` knobs (all other knobs at "
        "their defaults); **bold** = the current defaults. A row meets the targets when no "
        "healthy trace raises an alarm and every collapse trace is flagged within "
        f"{COLLAPSE_DELAY_TARGET} epochs.",
        "",
        "| collapse_std_ratio | collapse_patience | warmup_epochs | healthy traces with "
        "alarms | collapses missed | collapses late | max delay | targets met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sensitivity_rows if sensitivity_rows is not None else sensitivity():
        cells = [
            f"{r['collapse_std_ratio']:g}",
            str(r["collapse_patience"]),
            str(r["warmup_epochs"]),
            str(r["healthy_alarms"]),
            str(r["collapse_missed"]),
            str(r["collapse_late"]),
            "—" if r["max_delay"] is None else str(r["max_delay"]),
            "yes" if r["ok"] else "no",
        ]
        if r["default"]:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Thresholds measured",
        "",
        "The defaults of `engine/config.py` `DETECT_KNOBS` (override per arm in "
        "`[detect]` / `[arms.<name>.detect]`, see docs/arms.md):",
        "",
        "| knob | value |",
        "|---|---|",
    ]
    lines += [f"| `{k.name}` | {getattr(cfg, k.name)!r} |" for k in DETECT_KNOBS]
    lines += ["", RATIONALE.rstrip(), ""]
    return "\n".join(lines)


def main() -> None:
    DOC.write_text(render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
