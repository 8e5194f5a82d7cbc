#!/bin/bash
# Queries the running server (not the file): reward 1 when /health.json answers right.
mkdir -p /logs/verifier
python3 /tests/check_health.py && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt
