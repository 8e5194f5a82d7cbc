import json

import wordstats

TEXT = "the cat and The dog\nand the bird\nfin"
CHECKS = {
    "count_words": lambda: wordstats.count_words(TEXT) == 9,
    "count_lines": lambda: wordstats.count_lines(TEXT) == 3 and wordstats.count_lines("a\nb\n") == 2,
    "top_word": lambda: wordstats.top_word(TEXT) == "the" and wordstats.top_word("b a a b") == "b",
}
scores = {}
for name, check in CHECKS.items():
    try:
        scores[name] = 1.0 if check() else 0.0
    except Exception:
        scores[name] = 0.0
print(json.dumps({"reward": round(sum(scores.values()) / len(scores), 4), **scores}))
