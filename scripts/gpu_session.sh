#!/usr/bin/env bash
# One lent-GPU session in one command (docs/benchmarks.md, "GPU"): training throughput alone on
# the card, then the Stage A study (its arms, four at a time through the device queue)
# while the CUDA correctness checks run beside it; at the deadline unfinished arms are stopped
# gracefully (resumable), the study is exported, and the evidence is packed into $OUT.
#
#   OUT=/tmp/gpu BUDGET_S=520 bash scripts/gpu_session.sh
#   DEVICE=cpu SKIP_CHECKS=1 STUDY_ARGS="--profile quick --set epochs=1" bash scripts/gpu_session.sh
#
# On the device machine polars travels as wheels: set WHEELS=.whl to install them first.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_session}
BUDGET_S=${BUDGET_S:-520}
DEVICE=${DEVICE:-cuda:0}
STUDY_ARGS=${STUDY_ARGS:-}
STUDY=${STUDY_DIR:-/tmp/stage_a}
# The Stage A arms; add the seeds sweep's points (fnotui sweep seeds --list) or set
# STUDY_ARGS="--profile original" to run the original's conditions instead.
ARMS=${ARMS:-"arm_control arm_stable arm_stable_warmup arm_stable_lowlr arm_stable_warmup_unstepped"}
PY=${PYTHON:-python3}
export FNOTUI_QUEUE_DIR=${FNOTUI_QUEUE_DIR:-/tmp/fnotui-queue-session}
mkdir -p "$OUT"
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

if [ -n "${WHEELS:-}" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl && export PYTHONPATH=/tmp/site || exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/machine.txt"
$PY -c 'import torch, numpy, scipy, skimage, polars; print("torch", torch.__version__, "cuda", torch.version.cuda, "numpy", numpy.__version__, "scipy", scipy.__version__, "skimage", skimage.__version__, "polars", polars.__version__)' 2>&1 | tee -a "$OUT/machine.txt"
nproc | sed 's/^/cpus /' | tee -a "$OUT/machine.txt"

if [ -z "${SKIP_CHECKS:-}" ]; then
    say "throughput (the card alone)"
    $PY bench/train_throughput.py --batch-sizes 16 256 --reps 7 > "$OUT/throughput.md" 2>&1
    tail -12 "$OUT/throughput.md"
    say "train.compile: eager, compiled and CUDA graphs for the hybrid at batch 16"
    $PY bench/train_throughput.py --archs hybrid --batch-sizes 16 --compile off default graphs \
        --reps 7 > "$OUT/compile.md" 2>&1
    grep "samples/s" "$OUT/compile.md"
    say "peak memory per depth, with and without gradient checkpointing"
    $PY bench/deep_memory.py --device "$DEVICE" > "$OUT/deep_memory.md" 2> "$OUT/deep_memory.log"
    cat "$OUT/deep_memory.md"
fi

say "study: launching $ARMS on $DEVICE, 4 at a time"
LAUNCHED=$(date +%s)
$PY -m app.cli launch --max-parallel 4 --device "$DEVICE" --out "$STUDY" $STUDY_ARGS $ARMS

if [ -z "${SKIP_CHECKS:-}" ]; then
    say "correctness checks beside the study"
    $PY bench/gpu_check.py --out "$OUT/gpu_check.json" > "$OUT/gpu_check.txt" 2>&1
    cat "$OUT/gpu_check.txt"
fi

say "waiting for the study (deadline ${BUDGET_S} s)"
$PY - "$STUDY" "$BUDGET_S" "$T0" "$LAUNCHED" $ARMS <<'EOF'
import subprocess, sys, time
from pathlib import Path
from engine.runs.status import run_state
study, budget, t0, launched = Path(sys.argv[1]), *map(float, sys.argv[2:5])
arms = sys.argv[5:]
sampled = False
while time.time() < t0 + budget:
    states = {a: run_state(study / a) for a in arms}
    # An engine writes its first status a few seconds after launch (imports, arm lock).
    starting = time.time() < launched + 90 and "not started" in states.values()
    if not starting and not any(s in ("queued", "running", "stale") for s in states.values()):
        break
    if not sampled and time.time() > t0 + budget / 2:
        sampled = True
        try:
            subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                            "--format=csv"], check=False)
        except OSError as exc:
            print(f"no GPU sample: {exc}")
    time.sleep(5)
print({a: run_state(study / a) for a in arms}, flush=True)
EOF
say "stopping what still runs"
$PY -m app.cli stop --out "$STUDY" $STUDY_ARGS $ARMS 2>&1 | grep -v "not running" || true
$PY - "$STUDY" $ARMS <<'EOF'
import sys, time
from pathlib import Path
from engine.runs.status import run_state
study, arms = Path(sys.argv[1]), sys.argv[2:]
deadline = time.time() + 45
while time.time() < deadline and any(run_state(study / a) in ("running", "queued")
                                     for a in arms):
    time.sleep(1)
print({a: run_state(study / a) for a in arms}, flush=True)
EOF
say "export"
$PY -m app.cli export --out "$STUDY" $STUDY_ARGS --report "$STUDY/report" 2>&1 | tail -5
cp "$STUDY/report/summary.md" "$OUT/summary.md" 2>/dev/null
# Two archives, each under the 16 MB a lent machine hands back: the evidence without the
# telemetry (and without model weights and checkpoints), and the telemetry, xz-compressed.
tar -czf "$OUT/stage_a_evidence.tar.gz" -C "$(dirname "$STUDY")" --exclude='*.pt' \
    --exclude='.cache' --exclude='.lock' --exclude='telemetry.jsonl' --exclude='recon.npz' \
    "$(basename "$STUDY")"
tar -cJf "$OUT/stage_a_telemetry.tar.xz" -C "$(dirname "$STUDY")" \
    $(cd "$(dirname "$STUDY")" && ls -d "$(basename "$STUDY")"/*/telemetry.jsonl)
ls -la "$OUT"
say "done"
