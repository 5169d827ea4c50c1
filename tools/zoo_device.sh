#!/usr/bin/env bash
# Train, publish and evaluate zoo entries on one GPU, every entry in its own process at once.
#
#   tools/zoo_device.sh RUNS DATA OUT DEADLINE [N_IMAGES] [NAMES...]
#
# RUNS: run directories (RUNS/<dataset>/<name>, resumed where they stopped); DATA: --data-root;
# OUT: where packed results go (a tar.gz in <=15 MiB parts: RUNS with its logs, and the zoo
# weights directory, $CVGR_ZOO_DIR or the package's); DEADLINE: seconds after which
# unfinished work is stopped (it resumes on the next call: a run from its last finished
# epoch, an evaluation from its stored PGD(8) row).
# Per entry: `cvgr zoo train --gr-step traced`, `cvgr zoo publish`
# (the hardware string says how many runs shared the GPU), `cvgr zoo evaluate --n-images`.
# Used for the shipped zoo (zoo-runs/README.md); needs python3 with torch and cvgr
# importable. DEVICE=cpu runs it without a GPU (tests/test_zoo.py does, on a tiny dataset).
#
# PAPER="mnist fashion-mnist" adds, after the zoo entries, the paper-budget reproduction of
# each named dataset into RUNS/paper/<dataset> (`cvgr reproduce --budget paper`: the zoo
# models just published are taken, everything else is trained there, PAPER_JOBS processes
# sharing the device, evaluations on PAPER_N_IMAGES test images, default N_IMAGES) and the time
# table's single-run speed benchmark (benchmarks/train_speed.py on the device, nothing else
# running), all inside the same deadline and packed with the rest.
set -u
runs=$1 data=$2 out=$3 deadline=$4 n=${5:-1000}
shift 5 || shift $#
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  mapfile -t names < <(python3 -c 'from cvgr.zoo import CATALOGUE; print("\n".join(CATALOGUE))')
fi
logs=$runs/logs
zoo=${CVGR_ZOO_DIR:-src/cvgr/zoo/weights}  # where `cvgr zoo publish` puts the weights
mkdir -p "$runs" "$out" "$logs"
t0=$SECONDS
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
dev=${DEVICE:-cuda}  # DEVICE=cpu for a dry run
# MPS lets the processes' kernels share the GPU at once instead of by time slices; it is
# kept only if a client can use the GPU through it within 30 s.
if [ "$dev" != cpu ] && command -v nvidia-cuda-mps-control >/dev/null \
    && nvidia-cuda-mps-control -d 2>/dev/null; then
  if timeout 30 python3 -c 'import torch; torch.ones(1, device="cuda").sum().item()'; then
    echo "MPS daemon started"
  else
    echo quit | nvidia-cuda-mps-control; sleep 2; echo "MPS did not work: stopped"
  fi
fi
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name(0) if '$dev' != 'cpu' else 'cpu')")
hw="$gpu, ${#names[@]} zoo runs sharing it"
echo "device: $gpu; torch $(python3 -c 'import torch; print(torch.__version__)'); ${#names[@]} entries"

chain() {
  local name=$1 log=$logs/${1//\//__}.log
  {
    echo "== $name: train at $((SECONDS - t0)) s"
    # traced wherever it applies (exact/reference GR); config.json records the step that ran
    python3 -m cvgr zoo train "$name" --runs-dir "$runs" --data-root "$data" --device "$dev" \
      --threads 1 --gr-step traced --quiet || exit 1
    echo "== $name: publish at $((SECONDS - t0)) s"
    python3 -m cvgr zoo publish "$runs/$name" --name "$name" --hardware "$hw" || exit 1
    echo "== $name: evaluate at $((SECONDS - t0)) s"
    python3 -m cvgr zoo evaluate "$name" --n-images "$n" --device "$dev" --data-root "$data" \
      --quiet || exit 1
    echo "== $name: done at $((SECONDS - t0)) s"
  } >"$log" 2>&1
}

pack() {
  local tmp
  tmp=$(mktemp -d)
  tar -czf "$tmp/zoo.tgz" "$runs" "$zoo" 2>/dev/null
  split -b 15m -d "$tmp/zoo.tgz" "$tmp/zoo.tgz.part"
  rm -f "$out"/zoo.tgz.part* && mv "$tmp"/zoo.tgz.part* "$out"/ && rm -rf "$tmp"
}

pids=()
for name in "${names[@]}"; do
  chain "$name" &
  pids+=($!)
done
if [ "$dev" != cpu ]; then  # how busy the GPU is a minute in
  (sleep 60 && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv) &
fi
while :; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  if [ $((SECONDS - t0)) -ge "$deadline" ]; then
    echo "deadline ($deadline s) reached: stopping unfinished work"
    pkill -TERM -f -- "-m cvgr zoo "; sleep 5; pkill -KILL -f -- "-m cvgr zoo "
    break
  fi
  sleep 5
  if [ $(((SECONDS - t0) % 90)) -lt 5 ]; then pack; fi
done
wait 2>/dev/null
pack
paper() {  # the paper-budget reproductions and the device's timing row, after the zoo
  local ds left
  for ds in ${PAPER:-}; do
    left=$((deadline - (SECONDS - t0)))
    [ "$left" -gt 30 ] || break
    echo "== paper $ds at $((SECONDS - t0)) s ($left s left)"
    timeout -s TERM "$left" python3 -m cvgr reproduce --dataset "$ds" --budget paper \
      --out "$runs/paper/$ds" --jobs "${PAPER_JOBS:-8}" --device "$dev" \
      --n-images "${PAPER_N_IMAGES:-$n}" --data-root "$data" --quiet \
      >"$logs/paper-$ds.log" 2>&1
    echo "== paper $ds: exit $? at $((SECONDS - t0)) s"
  done
  left=$((deadline - (SECONDS - t0)))
  if [ -n "${PAPER:-}" ] && [ "$left" -gt 60 ] && [ -f benchmarks/train_speed.py ]; then
    timeout -s TERM "$left" python3 benchmarks/train_speed.py --device "$dev" --no-write \
      >"$logs/train_speed-$dev.txt" 2>&1
  fi
}
paper
pack
echo "finished at $((SECONDS - t0)) s"
for name in "${names[@]}"; do tail -n 2 "$logs/${name//\//__}.log" | sed "s|^|$name: |"; done
python3 - "$runs" <<'EOF'
import json, sys
from pathlib import Path
for m in sorted(Path(sys.argv[1]).glob("*/*/metrics.jsonl")):
    rows = [json.loads(l) for l in m.read_text().splitlines() if l.strip()]
    if rows:
        s = [r["train_seconds"] for r in rows]
        print(f"{m.parent}: {len(rows)} epochs, val {rows[-1]['val_acc']:.4f}, "
              f"train s/epoch {sum(s) / len(s):.1f}")
EOF
ls -la "$out"
