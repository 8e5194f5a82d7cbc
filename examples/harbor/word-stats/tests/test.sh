#!/bin/bash
# One point per function: reward.json holds the share of functions right, and each metric.
mkdir -p /logs/verifier
cd /app && PYTHONPATH=/app python3 /tests/score.py > /logs/verifier/reward.json
cat /logs/verifier/reward.json
