#!/usr/bin/env bash
# Train on a lent GPU machine in ≤ 10-minute calls (docs/training.md, "GPU recipe").
#
#   scripts/gpu_session.sh start CONFIG...   start one detached training process per config
#                                            (runs/<config name>/; survives the call's end)
#   scripts/gpu_session.sh watch SECONDS     wait that long or until every run is done, then
#                                            print progress and collect
#   scripts/gpu_session.sh collect           copy each run's fp16 snapshot, log and stdout
#                                            to $OUT (small enough to come back)
#
# The runs need the training pack (pack/train, `python -m lcodec.train.pack`) and the wheels
# the machine lacks (.whl/: pytorch-msssim, constriction), both carried with the call.
set -u
cd "$(dirname "$0")/.."
if [ ! -d /tmp/site/pytorch_msssim ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1

collect() {
    for d in runs/*/; do
        n=$(basename "$d")
        [ -f "$d/snapshot.safetensors" ] && cp "$d/snapshot.safetensors" "$OUT/$n.safetensors"
        [ -f "$d/log.csv" ] && cp "$d/log.csv" "$OUT/$n.log.csv"
        [ -f "$d/stdout.txt" ] && cp "$d/stdout.txt" "$OUT/$n.stdout.txt"
    done
    ls -la "$OUT"
}

progress() {
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    for d in runs/*/; do
        echo "== $d $( [ -f "$d/DONE" ] && echo DONE )"
        tail -n 4 "$d/stdout.txt"
    done
}

case "${1:-}" in
start)
    shift
    for cfg in "$@"; do
        n=$(basename "$cfg" .json)
        mkdir -p "runs/$n"
        setsid nohup bash -c "python3 -m lcodec.train.v1 '$cfg' 'runs/$n' && touch 'runs/$n/DONE'" \
            > "runs/$n/stdout.txt" 2>&1 < /dev/null &
    done
    sleep 5
    progress
    ;;
watch)
    end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
        pending=0
        for d in runs/*/; do [ -f "$d/DONE" ] || pending=1; done
        [ $pending = 0 ] && break
        sleep 5
    done
    progress
    collect
    ;;
collect)
    collect
    ;;
*)
    echo "usage: $0 start CONFIG... | watch SECONDS | collect" >&2
    exit 2
    ;;
esac
