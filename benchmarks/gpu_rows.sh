#!/usr/bin/env bash
# The GPU rows of docs/results/throughput.md and quality.md in one go, on one CUDA GPU: the GPU-path tests, the throughput table (float32 and
# bf16), the study's 100 MNIST epochs timed end to end, and the conditional quality runs evaluated
# with 10,000 samples against the full MNIST test split. Each stage has its own time limit, so one
# slow stage cannot take the others' results with it.
#
# Usage: bash benchmarks/gpu_rows.sh [DATA_DIR (holds MNIST/raw)] [OUT_DIR]
set -u
DATA=${1:-../shared/data}
OUT=${2:-outputs/gpu_rows}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HWGAN_DATA_DIR=$DATA HWGAN_CACHE_DIR=${HWGAN_CACHE_DIR:-cache}
runs=outputs/gpu_rows_runs
stage() { echo; echo "== $1 ($(date +%T))"; }

stage "GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'

stage "tests/test_gpu.py"
CG=false
if timeout 80 $PY -m pytest tests/test_gpu.py -q -p no:cacheprovider 2>&1 | tail -8 | tee "$OUT/tests.txt" \
    && grep -q " passed" "$OUT/tests.txt" && ! grep -q "failed\|error" "$OUT/tests.txt"; then
    CG=true
fi
echo "model.cuda_graph=$CG for the runs below"

stage "throughput, float32"
timeout 75 $PY benchmarks/throughput.py --device cuda --data-dir "$DATA" --rounds 2 2>&1 | grep -v "it/s\]" | tail -12

train() {  # name, time limit, overrides...
    local name=$1 limit=$2
    shift 2
    $PY -m handwriting_gan name="$name" paths.output_dir=$runs trainer=gpu model.cuda_graph=$CG \
        trainer.enable_progress_bar=false "++trainer.max_time=$limit" "$@" >"$runs.$name.log" 2>&1
    echo "$name: exit $?; $(grep -h "stopped\|Time limit" "$runs.$name.log"); $(tail -1 "$runs.$name.log")"
}
mkdir -p $runs

stage "the study's run: experiment=paper_mnist, 100 epochs"
start=$SECONDS
train paper_mnist 00:00:02:40 experiment=paper_mnist
echo "paper_mnist wall time: $((SECONDS - start)) s, including start-up; it stopped because:"
grep -h "stopped\|Time limit" $runs.paper_mnist.log

stage "conditional quality runs (in parallel)"
train cdcgan_concat 00:00:02:10 experiment=cdcgan_mnist model.discriminator.conditioning=concat &
train cdcgan_snhinge 00:00:02:10 experiment=cdcgan_mnist model.discriminator.spectral_norm=true model.loss=hinge &
train fewshot_mnist 00:00:02:10 experiment=fewshot_mnist '~callbacks.samples' '~callbacks.losses' &
wait

stage "evaluate (10,000 samples, full MNIST test split)"
for run in $runs/*/*/; do
    timeout 60 $PY -m handwriting_gan.evaluate run_dir="$run" num_samples=10000 device=cuda 2>&1 | tail -1 \
        | sed "s|^|$(basename "$(dirname "$run")"): |" | tee -a "$OUT/metrics.jsonl"
    grid=$(ls "$run"/figures/samples_epoch_*.png 2>/dev/null | tail -1)
    [ -n "$grid" ] && cp "$grid" "$OUT/$(basename "$(dirname "$run")")_last_grid.png"
done

stage "throughput, bf16-mixed"
timeout 35 $PY benchmarks/throughput.py --device cuda --data-dir "$DATA" --rounds 1 --precision bf16-mixed \
    2>&1 | grep -v "it/s\]" | tail -9
stage "done"
