#!/usr/bin/env bash
# Protocol C of docs/rmcg_results.md: all seven models on the large developer set
# (../shared/data/breast_idc_patches_large), a seeded 4,000-patch training subset (the same for every
# model at a given seed), balanced sampler, 6 epochs, half-width ResNet18 backbone, the epoch with
# the best validation balanced accuracy, then paired statistics on the 2,500 test patches.
# About 2.5 minutes per run on one CPU core (21 runs); runs already finished are skipped.
set -euo pipefail
DATA=${DATA:-../shared/data/breast_idc_patches_large}
OUT=${OUT:-runs/protocol_c}
for seed in 0 1 2; do
  for model in rmcg resnet18 alexnet resnet18-gcn ecc resnet18-gat gcnii; do
    run=$OUT/$model-s$seed
    [ -f "$run/metrics.json" ] && continue
    python examples/rmcg/train.py --data "$DATA" --model "$model" --seed "$seed" --epochs 6 \
      --train-limit 4000 --sampler balanced --width 32 --image-size 50 --batch-size 32 --threads 1 \
      --no-progress --heatmaps 0 --out "$run"
  done
done
groups=()
for model in rmcg resnet18 alexnet resnet18-gcn ecc resnet18-gat gcnii; do groups+=(--group "$model=$OUT/$model-s*"); done
python examples/rmcg/paired.py "${groups[@]}" --pair rmcg resnet18 --pair rmcg "${BEST_GRAPH:-resnet18-gcn}" \
  --boot 2000 --out "$OUT/paired"
