#!/usr/bin/env bash
# GPU latency tables for fmnist-mbv3 (cuda-b1, cuda-b64) and the export check that predicts beside it.
# Needs an NVIDIA GPU with PyTorch CUDA; run from the repository root:
#   bash experiments/cuda_tables.sh
# 1. a search on the shipped cpu-1thread table (CPU only, seed 0): the front to export;
# 2. both GPU tables, validated on fresh subnets (latency_tables/cuda-b1, latency_tables/cuda-b64);
# 3. hwnas export of 5 front models timed on both GPU profiles, each beside its GPU table's prediction
#    (the search predicted for the CPU only: export fills in the other tables' predictions).
# Writes experiments/results/cuda_export.{json,md,png}. The committed results: step 1 ran on the project's
# 2-core VM, steps 2-3 on one NVIDIA H200 (torch 2.11 + CUDA 13.0, no onnxruntime-gpu), 2026-12-04.
set -euo pipefail
cd "$(dirname "$0")/.."
run=$(mktemp -d)
hw() { python3 -m hwnas.cli "$@"; }
hw search --supernet checkpoints/fmnist-mbv3.safetensors --predictor predictors/fmnist-mbv3/accuracy_xgb.json \
  --device cpu-1thread --budget-ms 0.3 0.4 0.5 --evaluations 10000 --seed 0 --out "$run/search" --no-progress
hw profile --device cuda-b1 --space fmnist-mbv3 --validate 80 --build-workers 1 --force --no-progress
hw profile --device cuda-b64 --space fmnist-mbv3 --validate 50 --rounds 1 --build-workers 1 --force --no-progress
hw export "$run/search" --pick 5 --measure cuda-b1 cuda-b64 --out "$run/export" --no-progress
cp "$run/export/summary.json" experiments/results/cuda_export.json
cp "$run/export/report.md" experiments/results/cuda_export.md
cp "$run/export/report.png" experiments/results/cuda_export.png
