#!/usr/bin/env bash
# Demo model v2 (issue 14): the whole chain on one GPU, meant to fit in 10 minutes. It writes the pipeline folder,
# its logs and the quality table to $OUT:
#   synth v2 designs -> psd build -> RGBA-VAE -> latent cache -> i2l -> fp16 export -> benchmarks/bench_quality.py
# TOY=1 runs the same commands at toy size (a few designs, 2 steps per stage) so the chain can be checked on a CPU.
# It has been run at toy size on CPU only: no GPU was ever lent to this task (training/DEMO_PLAN.md). Not solved
# yet for the device machine: it has torch, accelerate, transformers and pyarrow but not diffusers or psd-tools
# (carry them as wheels) nor the synth fonts (build the dataset here and pass it as DATA=folder: 3,000 rows at
# 128 px are 111 MB, over the 64 MiB a device call carries, so build fewer or smaller rows).
#   OUT=/tmp/chain TOY=1 bash training/gpu_chain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder the pipeline and logs go to}
WORK=${WORK:-$(mktemp -d)}
if [[ "${TOY:-0}" == 1 ]]; then
    COUNT=40 VAE_STEPS=2 I2L_STEPS=2 BENCH=(--count 2 --model-samples 1 --steps 2)
else
    COUNT=${COUNT:-20000} VAE_STEPS=${VAE_STEPS:-4000} I2L_STEPS=${I2L_STEPS:-8000} BENCH=(--count 32 --model-samples 0)
fi
WORKERS=$(nproc)
mkdir -p "$OUT" "$WORK"
# From the checkout, installed or not (the device machine has no `layered` entry point).
layered() { python3 -m layered "$@"; }
step() { printf '[%s] %s\n' "$(date +%T)" "$*" | tee -a "$OUT/chain.log"; }

if [[ -n "${DATA:-}" ]]; then  # a dataset built elsewhere (the device machine has no fonts for synth)
    ln -s "$(realpath "$DATA")" "$WORK/ds"
else
    step "synth $COUNT designs (seed 0; the benchmark holds out seed 1000)"
    layered psd synth -o "$WORK/psd" --count "$COUNT" --seed 0 --size 128 --workers "$WORKERS"
    layered psd build "$WORK/psd" -o "$WORK/ds" --workers "$WORKERS" --caption names
fi
step "RGBA-VAE, $VAE_STEPS steps"
layered train vae training/configs/demo_v2_vae_gpu.yaml --data "$WORK/ds" --output-dir "$WORK/vae" \
    --max-steps "$VAE_STEPS"
step "latent cache"
layered train mmdit training/configs/demo_v2_i2l_gpu.yaml --data "$WORK/ds" --vae "$WORK/vae/vae" \
    --build-cache --cache "$WORK/cache"
step "i2l, $I2L_STEPS steps"
layered train mmdit training/configs/demo_v2_i2l_gpu.yaml --data "$WORK/ds" --vae "$WORK/vae/vae" \
    --cache "$WORK/cache" --output-dir "$WORK/i2l" --max-steps "$I2L_STEPS"
step "export (fp16) and score"
python3 -m training.export_pipeline "$WORK/i2l/pipeline" "$OUT/pipeline"
cp "$WORK/vae/logs/metrics.jsonl" "$OUT/vae_metrics.jsonl"
cp "$WORK/i2l/logs/metrics.jsonl" "$OUT/i2l_metrics.jsonl"
python3 benchmarks/bench_quality.py --model "$OUT/pipeline" --sizes 128 256 "${BENCH[@]}" --json "$OUT/bench.json" \
    | tee "$OUT/bench.txt"
step "done"
