#!/usr/bin/env bash
# One GPU slice of PoseMamba-S training at T = 243 (docs/training.md, "GPU training in slices").
#
#   scripts/gpu_slice.sh --prepare          here, once: .slice/ gets the Human3.6M cache (from
#                                           ../shared) and the skater's 2D keypoints, <= 48 MiB
#   scripts/gpu_slice.sh OUT_DIR            on the GPU machine, with .slice/ carried beside the code
#   scripts/gpu_slice.sh --dry-run OUT_DIR  the same steps on the CPU, small and short (preset XS,
#                                           T = 27), to test the script without a GPU
#
# A run continues from slices/posemamba_s243.pt when that file exists (from scratch otherwise),
# trains for POSE3D_SLICE_TRAIN_MINUTES (default 4.5), and writes at most 8 files to OUT_DIR:
#   posemamba_s243.pt     the new weights (commit them as slices/posemamba_s243.pt)
#   slice_metrics.json    what ran, how long, the training and quick-evaluation figures, speeds
#   train_metrics.jsonl   the training run's metrics.jsonl
#   eval_quick.json       pose3d eval --quick --json
#   speed.md              benchmarks/lifter_speed.py: S at T = 243 per scan backend
#   lift_skater.json      pose3d lift --device cuda on the skater's 2D keypoints
#   slice.log             everything the steps printed
# Each step runs under a timeout taken from what is left of POSE3D_SLICE_SECONDS (default 530),
# so the whole run ends inside a 9-minute slice; a step that fails or times out is recorded and
# the next one still runs (POSE3D_SLICE_SKIP="speed lift" leaves steps out). It needs torch and
# numpy; typer and rich are in the GPU image, and wheels put in .slice/wheels/ are installed
# first (no internet there).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLICE_DIR=${POSE3D_SLICE_DIR:-$ROOT/.slice}
PY=${PYTHON:-python3}
MODE=run
case "${1:-}" in
  --prepare) MODE=prepare; shift ;;
  --dry-run) MODE=dry; shift ;;
esac

if [ "$MODE" = prepare ]; then
  SHARED=${POSE3D_SHARED:-$ROOT/../shared}
  mkdir -p "$SLICE_DIR"
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
  if [ ! -f "$SLICE_DIR/h36m_cache.npz" ]; then
    "$PY" -m pose3d.cli cache build --data "$SHARED/data/h36m" -o "$SLICE_DIR/h36m_cache.npz" || exit 1
  fi
  cp "$SHARED/keypoints/skater_hrnet_h36m17.npz" "$SLICE_DIR/" || exit 1
  total=$(du -cb "$SLICE_DIR" | tail -1 | cut -f1)
  echo "$SLICE_DIR: $((total / 1048576)) MiB (limit 48); carry it: run(..., carry=[\".slice\"])"
  [ "$total" -le $((48 * 1048576)) ] || { echo "error: $SLICE_DIR is over 48 MiB" >&2; exit 1; }
  exit 0
fi

OUT=${1:?usage: scripts/gpu_slice.sh [--prepare | [--dry-run] OUT_DIR]}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
LOG=$OUT/slice.log
START=$(date +%s)
DEADLINE=$((START + ${POSE3D_SLICE_SECONDS:-530}))
export PYTHONUNBUFFERED=1 PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}

if [ "$MODE" = dry ]; then
  PRESET=XS T=27 BATCH=4 DEVICE=cpu PRECISION=fp32 BENCH_BATCH=2 BACKENDS=fused
  TRAIN_MINUTES=${POSE3D_SLICE_TRAIN_MINUTES:-0.2}
  DATA=${POSE3D_SLICE_DATA:-$SLICE_DIR/h36m_cache.npz}
else
  PRESET=S T=243 BATCH=16 DEVICE=cuda PRECISION=bf16 BENCH_BATCH=8 BACKENDS=torch,chunked,mamba-ssm
  TRAIN_MINUTES=${POSE3D_SLICE_TRAIN_MINUTES:-4.5}
  DATA=$SLICE_DIR/h36m_cache.npz
fi
if [ "$MODE" = dry ]; then INIT=${POSE3D_SLICE_INIT:-}; else INIT=${POSE3D_SLICE_INIT:-$ROOT/slices/posemamba_s243.pt}; fi
WEIGHTS=$OUT/posemamba_s243.pt

log() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }
STEPS=()
# step NAME MAX_SECONDS COMMAND...: runs under min(MAX, time left - 20 s), records rc and seconds
step() {
  local name=$1 most=$2; shift 2
  local left=$((DEADLINE - $(date +%s) - 20)) began rc
  local limit=$(( most < left ? most : left ))
  if [[ " ${POSE3D_SLICE_SKIP:-} " == *" $name "* ]]; then
    log "step $name: skipped (POSE3D_SLICE_SKIP)"; STEPS+=("$name skipped 0"); return 0
  fi
  if [ "$limit" -lt 10 ]; then
    log "step $name: skipped (${left} s left)"; STEPS+=("$name skipped 0"); return 0
  fi
  log "step $name (at most $limit s): $*"
  began=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  log "step $name: exit $rc after $(( $(date +%s) - began )) s"
  STEPS+=("$name $rc $(( $(date +%s) - began ))")
  return 0
}

log "gpu_slice $MODE: preset $PRESET, T $T, batch $BATCH, $DEVICE, $PRECISION, $TRAIN_MINUTES min of training"
{ nvidia-smi 2>/dev/null || true; "$PY" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), 'numpy', numpy.__version__)"; } >>"$LOG" 2>&1
if compgen -G "$SLICE_DIR/wheels/*.whl" >/dev/null; then
  step wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$SLICE_DIR"/wheels/*.whl
  export PYTHONPATH=$PYTHONPATH:$WORK/site
fi
[ -f "$DATA" ] || { log "error: no training data at $DATA (scripts/gpu_slice.sh --prepare, then carry .slice)"; exit 1; }

# --- train: a warm-up and a cosine over the time budget, which stops the run before it ends; no
# validation inside the run (the eval step below scores the saved weights under its own timeout)
"$PY" - "$WORK/train.json" "$DATA" "$WORK/run" "$PRESET" "$T" "$BATCH" "$TRAIN_MINUTES" "$PRECISION" "$INIT" <<'EOF' >>"$LOG" 2>&1
import json, os, sys
path, data, run, preset, frames, batch, minutes, precision, init = sys.argv[1:]
config = dict(data=data, out_dir=run, preset=preset, clip_frames=int(frames), batch_size=int(batch),
              frame_steps=[1], lr=5e-4, schedule="cosine", warmup_steps=5, val="none",
              checkpoint_minutes=60, time_budget_minutes=float(minutes), epochs=1000, precision=precision)
if init and os.path.isfile(init):
    config["init_weights"] = init
json.dump(config, open(path, "w"), indent=1)
print("training config:", json.dumps(config))
EOF
TRAIN_LIMIT=$("$PY" -c "print(int(float('$TRAIN_MINUTES') * 60 + 150))")
step train "$TRAIN_LIMIT" "$PY" -m pose3d.cli --verbose train --config "$WORK/train.json" --device "$DEVICE"
for name in best.pt final.pt last.pt; do
  if [ -f "$WORK/run/$name" ]; then
    "$PY" - "$WORK/run/$name" "$WEIGHTS" "$INIT" "$WORK/run/metrics.jsonl" <<'EOF' >>"$LOG" 2>&1 && break
import datetime, json, os, sys
from pose3d.weights import load_weights, save_weights
source, target, init, metrics = sys.argv[1:]
model, meta = load_weights(source)  # a checkpoint loads as weights too: only the weights travel back
previous = load_weights(init)[1].get("slices", []) if init and os.path.isfile(init) else []
last = json.loads(open(metrics).read().splitlines()[-1]) if os.path.isfile(metrics) else {}
this = {"date": datetime.date.today().isoformat(), "from": os.path.basename(init) if init and os.path.isfile(init) else "scratch",
        "saved": os.path.basename(source), **{k: last[k] for k in ("epoch", "step", "val_p1", "val_p2") if k in last}}
meta = {k: v for k, v in meta.items() if k not in ("path", "sha256")}
save_weights(target, model, {**meta, "slices": previous + [this]})
print("weights:", target, this)
EOF
  fi
done
[ -f "$WORK/run/metrics.jsonl" ] && cp "$WORK/run/metrics.jsonl" "$OUT/train_metrics.jsonl"

# --- evaluate, measure, lift
if [ -f "$WEIGHTS" ]; then
  step eval 150 "$PY" -m pose3d.cli eval --data "$DATA" --weights "$WEIGHTS" --quick --json "$OUT/eval_quick.json" \
    --device "$DEVICE"
fi
step speed 150 "$PY" "$ROOT/benchmarks/lifter_speed.py" --devices "$DEVICE" --backends "$BACKENDS" --presets "$PRESET" --frames "$T" \
  --modes infer1,infer,train --batch "$BENCH_BATCH" --train-batch "$BATCH" --warmup 1 --repeats 3 --budget 40 \
  --json "$WORK/speed.json" --out "$OUT/speed.md"
if [ -f "$SLICE_DIR/skater_hrnet_h36m17.npz" ]; then
  lift_weights=()
  [ -f "$WEIGHTS" ] && lift_weights=(--weights "$WEIGHTS")
  step lift 60 "$PY" -m pose3d.cli lift --keypoints "$SLICE_DIR/skater_hrnet_h36m17.npz" --size 1280x720 --fps 25 \
    --device "$DEVICE" "${lift_weights[@]}" -o "$OUT/lift_skater.json"
fi

# --- the summary
"$PY" - "$OUT" "$WORK" "$MODE" "$(( $(date +%s) - START ))" "${STEPS[@]}" <<'EOF' >>"$LOG" 2>&1
import json, re, sys
from pathlib import Path
import torch
out, work, mode, seconds, steps = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:]
summary = {"mode": mode, "seconds": seconds, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
           "steps": {s.split()[0]: {"exit": s.split()[1], "seconds": int(s.split()[2])} for s in steps}}
config = work / "train.json"
if config.is_file():
    summary["train_config"] = json.loads(config.read_text())
metrics = out / "train_metrics.jsonl"
if metrics.is_file():
    summary["train"] = [json.loads(line) for line in metrics.read_text().splitlines()][-1]
evaluation = out / "eval_quick.json"
if evaluation.is_file():
    e = json.loads(evaluation.read_text())
    summary["eval_quick"] = {"p1": e["p1"], "p2": e["p2"], "frames": e["frames"]}
speed = work / "speed.json"
if speed.is_file():
    summary["speed"] = [{k: r.get(k) for k in ("backend", "mode", "preset", "frames", "batch", "fps", "median_s",
                                                "peak_mib", "skipped", "error")} for r in json.loads(speed.read_text())]
log = (out / "slice.log").read_text()
lifted = re.findall(r"(\d+) frames?, .*?\(([\d.]+) frames/s\)", log)
if lifted:
    summary["lift"] = {"frames": int(lifted[-1][0]), "frames_per_s": float(lifted[-1][1])}
weights = out / "posemamba_s243.pt"
summary["weights_mib"] = round(weights.stat().st_size / 2 ** 20, 2) if weights.is_file() else None
(out / "slice_metrics.json").write_text(json.dumps(summary, indent=1))
print(json.dumps({k: summary.get(k) for k in ("seconds", "steps", "eval_quick", "weights_mib")}))
EOF
rm -rf "$WORK"
log "done: $(ls "$OUT" | tr '\n' ' ')"
[ -f "$WEIGHTS" ] && [ -f "$OUT/slice_metrics.json" ]
