"""How fast `lancer view` is on a long run: a 1,000-step trajectory (target: renders in < 2 s).

    python scripts/bench_view.py [--steps 1000] [--loads 5]

The run is synthetic but shaped like a real one: every step has model text and one or two
tool calls; outputs of 5 to 60 lines, every 10th a 400-line one (folded), every 25th step
a 1280x800 screenshot. Prints the medians of:
- writing the page (``lancer view``'s work, in this process);
- Chromium opening it from disk: navigation start to the load event and the first frame
  painted after it (the page is then usable: laid out, scrollable, linked);
- following a link to the last step (``#step-N``) on the loaded page, until it is on screen.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from lancer.browser.chromium import Chromium  # noqa: E402
from lancer.study.view import ViewBuilder  # noqa: E402


def png(width: int, height: int, shade: int) -> bytes:
    """A plain PNG, a page-like picture: light grey with a darker band."""
    rows = b"".join(b"\x00" + bytes([shade if 100 < y < 160 else 235]) * 3 * width for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def make_long_run(run_dir: Path, steps: int = 1000) -> Path:
    """A run directory with ``steps`` steps, result.json and patch.diff."""
    shots = run_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    header = {"type": "header", "format_version": 1, "task": {"id": "long-run", "variant": "ic_swe", "price": 1000.0,
              "title": "A long run", "description": "Benchmark task.\n" * 5}, "model": "bench:model",
              "config": {}, "started_at": "2025-01-01T00:00:00+00:00"}  # fmt: skip
    lines = [json.dumps(header), json.dumps({"type": "prompt", "messages": []})]
    for n in range(1, steps + 1):
        output_lines = 400 if n % 10 == 0 else 5 + n % 56
        output = "".join(
            f"src/module_{n}.py:{i}: some matching line with code = value({i})\n" for i in range(output_lines)
        )
        calls = [{"id": f"c{n}", "name": "bash", "arguments": {"command": f"grep -rn 'value' src | head -{n}"}}]
        observations = [{"tool_call_id": f"c{n}", "name": "bash", "output": output, "images": [], "is_error": False}]
        if n % 25 == 0:
            shot = shots / f"shot-{n:04d}.png"
            shot.write_bytes(png(1280, 800, n % 200))
            calls.append({"id": f"s{n}", "name": "browser", "arguments": {"action": "screenshot"}})
            observations.append(
                {
                    "tool_call_id": f"s{n}",
                    "name": "browser",
                    "output": f"screenshot saved to {shot}",
                    "images": [str(shot)],
                    "is_error": False,
                }
            )
        step = {"type": "step", "step": n, "content": f"Step {n}: looking at what the search found. " * 4,
                "tool_calls": calls, "observations": observations,
                "usage": {"input_tokens": 1000 + n, "output_tokens": 80, "cost_usd": 0.003},
                "events": [], "model_duration_s": 1.2, "duration_s": 1.5}  # fmt: skip
        lines.append(json.dumps(step))
    final = {"type": "final", "exit_status": "step_limit", "detail": f"reached {steps} steps", "steps": steps}
    lines.append(json.dumps(final))
    (run_dir / "trajectory.jsonl").write_text("\n".join(lines) + "\n")
    result = {"task_id": "long-run", "variant": "ic_swe", "price": 1000.0, "resolved": False, "earned": 0.0,
              "exit_status": "step_limit", "detail": final["detail"], "steps": steps, "cost_usd": 3.0,
              "input_tokens": 0, "output_tokens": 0, "model": "bench:model", "sandbox": "local", "answer": None,
              "grade": {"status": "failed", "attempts": 1, "detail": "tests failed", "output_tail": "1 failed"},
              "duration_s": 1500.0}  # fmt: skip
    (run_dir / "result.json").write_text(json.dumps(result))
    (run_dir / "patch.diff").write_text("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n")
    return run_dir


LOADED = """() => new Promise(done => {
  const finish = () => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));
  if (document.readyState === "complete") finish(); else addEventListener("load", finish);
})"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_long_run(Path(tmp) / "run", args.steps)
        builds = []
        for _ in range(args.loads):
            started = time.perf_counter()
            page_path = ViewBuilder(run_dir, run_dir / "view.html").build()
            builds.append(time.perf_counter() - started)
        size = page_path.stat().st_size
        loads, jumps = [], []
        chromium = Chromium()
        try:
            browser = chromium.browser
            for _ in range(args.loads):
                tab = browser.new_page(viewport={"width": 1280, "height": 800})
                tab.goto(page_path.as_uri(), wait_until="commit")
                loads.append(tab.evaluate(LOADED) / 1000)  # performance.now() counts from navigation start
                started = time.perf_counter()
                tab.click(f"nav.steps a[href='#step-{args.steps}']")
                tab.wait_for_function(f"document.getElementById('step-{args.steps}').getBoundingClientRect().top < 100")
                jumps.append(time.perf_counter() - started)
                tab.close()
        finally:
            chromium.close()
    print(f"{args.steps}-step run, page {size / 1e6:.1f} MB ({args.loads} runs, medians):")
    print(f"  lancer view writes the page        {statistics.median(builds):6.2f} s")
    print(f"  Chromium renders it (load + paint) {statistics.median(loads):6.2f} s   target < 2 s")
    print(f"  jump to #step-{args.steps}               {statistics.median(jumps) * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
