#!/bin/bash
# The verdict is what this writes to /logs/verifier/reward.txt: 1 passed, 0 failed.
mkdir -p /logs/verifier
if python3 -m pytest -q -p no:cacheprovider /tests/test_outputs.py; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
