"""Check a built minifer wheel: the package data is inside and the wheel stays small.

    python scripts/check_wheel.py dist/minifer-*.whl

Fails (exit 1, one line) unless the wheel holds the default emotion weights, the YuNet face
detector with its licence and provenance, no tests or training runs, and is under 10 MB.
"""
import os
import sys
import zipfile

REQUIRED = ["minifer/fer/weights/minivgg_fer.npz", "minifer/fer/weights/models.json", "minifer/fer/weights/minivgg_crowd.npz", "minifer/fer/yunet/yunet_s_640_640.onnx",
            "minifer/fer/yunet/LICENSE", "minifer/fer/yunet/README.md", "minifer/fer/static/index.html",
            "minifer/__init__.py"]
LIMIT_MB = 10.0


def main(path):
    names = zipfile.ZipFile(path).namelist()
    missing = [n for n in REQUIRED if n not in names]
    stray = [n for n in names if n.startswith(("tests/", "runs/", "weights/", "examples/"))]
    size = os.path.getsize(path) / 2**20
    if missing or stray or size >= LIMIT_MB:
        sys.exit(f"{path}: missing {missing}, should not hold {stray[:5]}, {size:.1f} MB "
                 f"(limit {LIMIT_MB:.0f} MB)")
    print(f"{os.path.basename(path)}: {size:.2f} MB, {len(names)} files, package data inside")


if __name__ == "__main__":
    main(sys.argv[1])
