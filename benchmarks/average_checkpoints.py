#!/usr/bin/env python
"""Would averaging the weights of a run's last checkpoints score better than its last one?

Tail averaging (stochastic weight averaging, LAWA) as a probe: train with `--eval-every 100
--keep 30`, so the run keeps a resumable checkpoint every 100 steps, then average the weights of
its last N checkpoints (last.safetensors and the N-1 before it) and score each average on
held-out data with `seqgen eval`.

    seqgen train train.txt --time-budget 105 --eval-every 100 --keep 30 --out run
    python benchmarks/average_checkpoints.py run valid.txt 1 3 5 7 9

Prints one line per N; issue 18's numbers are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run directory trained with --keep")
    ap.add_argument("valid", type=Path, help="held-out data, as seqgen eval reads it")
    ap.add_argument("counts", type=int, nargs="+", help="how many of the last checkpoints to average")
    a = ap.parse_args()
    files = sorted(a.run.glob("step-*.safetensors")) + [a.run / "last.safetensors"]
    with safe_open(str(a.run / "best.safetensors"), "pt") as best:  # the weights alone, and the metadata
        metadata, names = best.metadata(), list(best.keys())
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.counts:
            chosen = files[-n:]
            total = {name: torch.zeros((), dtype=torch.float64) for name in names}
            for path in chosen:
                with safe_open(str(path), "pt") as f:
                    for name in names:
                        total[name] = total[name] + f.get_tensor(name).double()
            averaged = Path(tmp) / f"average-{n}.safetensors"
            save_file({name: (t / len(chosen)).float() for name, t in total.items()}, str(averaged), metadata=metadata)
            scored = subprocess.run([sys.executable, "-m", "seqgen", "eval", str(averaged), str(a.valid), "--json"],
                                    capture_output=True, text=True, check=True)
            print(f"last {len(chosen)} checkpoints (from {chosen[0].name}): valid {json.loads(scored.stdout)['loss']:.4f}",
                  flush=True)


if __name__ == "__main__":
    main()
