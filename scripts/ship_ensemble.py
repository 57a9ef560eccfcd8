"""Ship an ensemble file (the members' averaged softmax) and measure it for the model card.

    python scripts/ship_ensemble.py NET1.npz NET2.npz ... --data ../shared/data/fer2013/fer2013_train_val.npz

1. loads every member (single networks; their input sizes may differ: each sees the central
   crop of its own size, :class:`minifer.model.Ensemble`), and saves them as one float16
   file, ``weights/fer_ensemble.npz`` by default, with each member's training metadata;
2. evaluates the *shipped* file on the validation split without TTA, with flip and with
   ten-crop TTA -> ``weights/ensemble_eval.json``, and prints the per-class table.

Use it with ``python -m minifer.predict --weights weights/fer_ensemble.npz`` (or ``evaluate``).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
from minifer.model import Ensemble, load_model  # noqa: E402
from ship_model import evaluate_file  # noqa: E402


def main():
    """Build, save, evaluate and print (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("members", nargs="+", help="weights files of single networks")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default=str(ROOT / "weights" / "fer_ensemble.npz"))
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (a dry run)")
    a = p.parse_args()
    members = [load_model(f) for f in a.members]
    if any(isinstance(m, Ensemble) for m in members):
        raise SystemExit("error: members must be single networks")
    ens = Ensemble(members)
    ens.save(a.out, dtype=np.float16, compress=True, sources=[Path(f).name for f in a.members])
    print(f"{ens.name}: {', '.join(Path(f).name for f in a.members)}; {ens.num_params():,} parameters, "
          f"{ens.flops() / 1e9:.3f} GFLOP per face")
    evaluate_file(a.out, a.data, a.limit, Path(a.out).with_name("ensemble_eval.json"))
    print(f"\nfile {a.out}: {Path(a.out).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
