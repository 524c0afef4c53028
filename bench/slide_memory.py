"""Peak memory of patching a large tiled TIFF tile by tile vs decoding it whole.

    python bench/slide_memory.py [--size 12000] [--spots 400]

Writes a synthetic tiled TIFF (deflate, 256-px tiles) of ``size``² RGB pixels to a temporary
folder, then in two fresh processes cuts ``spots`` 112-px patches and a 1000-px thumbnail: once
with the project's tile reader (``open_slide``), once by decoding the whole image with Pillow
(what ``SlideImage`` does for JPEG/PNG). Prints each process's peak RSS and the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

CHILD = r"""
import json, sys, time
import numpy as np
from thitogene_kedro.sections.images import SlideImage
from thitogene_kedro.sections.tiff_slide import open_slide
from thitogene_kedro.profiling import peak_rss_mib
path, mode, spots = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
slide = open_slide(path) if mode == "tiles" else SlideImage(path)
rng = np.random.default_rng(0)
xy = rng.uniform(200, min(slide.width, slide.height) - 200, (spots, 2)).astype(int)
for x, y in xy:
    slide.read_region(int(x) - 56, int(y) - 56, 112, 112)
slide.thumbnail(1000)
print(json.dumps({"peak_rss_mib": peak_rss_mib(), "seconds": time.perf_counter() - start}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12000)
    parser.add_argument("--spots", type=int, default=400)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slide.tif"
        rng = np.random.default_rng(0)
        block = rng.integers(120, 255, (512, 512, 3), dtype=np.uint8)
        with tifffile.TiffWriter(path, bigtiff=True) as writer:
            tiles = (np.tile(block, (1, 1, 1))[:256, :256] for _ in range(((args.size + 255) // 256) ** 2))
            writer.write(
                tiles,
                shape=(args.size, args.size, 3),
                dtype=np.uint8,
                tile=(256, 256),
                compression="zlib",
                photometric="rgb",
            )
        raw_mib = args.size**2 * 3 / 2**20
        results = {}
        for mode in ("tiles", "whole"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), mode, str(args.spots)],
                capture_output=True,
                text=True,
                check=False,
            )
            results[mode] = (
                json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-300:]}
            )
    print(f"slide {args.size}×{args.size} RGB ({raw_mib:,.0f} MiB decoded), {args.spots} patches + thumbnail")  # noqa: T201
    for mode, result in results.items():
        print(f"  {mode:5s}: {result}")  # noqa: T201
    if all("peak_rss_mib" in r for r in results.values()):
        ratio = results["whole"]["peak_rss_mib"] / results["tiles"]["peak_rss_mib"]
        print(f"  peak RSS ratio whole/tiles: {ratio:.1f}")  # noqa: T201


if __name__ == "__main__":
    main()
