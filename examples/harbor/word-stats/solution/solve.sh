#!/bin/bash
set -euo pipefail
cat > /app/wordstats.py <<'PY'
from collections import Counter


def count_words(text: str) -> int:
    return len(text.split())


def count_lines(text: str) -> int:
    return len(text.splitlines())


def top_word(text: str) -> str:
    words = [w.lower() for w in text.split()]
    counts = Counter(words)
    return max(words, key=lambda w: (counts[w], -words.index(w)))
PY
