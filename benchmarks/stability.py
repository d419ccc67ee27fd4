"""Label stability under small changes, through the real offline pipeline.

    .venv/bin/python benchmarks/stability.py [--per-dataset 30] [--out benchmarks/results/stability.json]

For a seeded sample of each dev set (../shared/data: flickr_ldl_dev in mikels8, emotion6_dev in
emotion6, twitter1_dev in sentiment) the photo and five small changes of it are judged with
``Reasoner.from_preset("offline")`` (no rationale): a JPEG re-encode at quality 60, a WebP copy,
a half-size copy, a white band with black text over the bottom 12%, and a crop of 5% per side.
Writes, per change, how many labels flipped, and how many of the flipped photos the original
judgment had already marked ``stable: false`` (its own second view: mirrored, 4% cropped).
Figures are measured, never asserted. Skips (exit 0, says so) when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = {"flickr_ldl_dev": "mikels8", "emotion6_dev": "emotion6", "twitter1_dev": "sentiment"}


def changes(img: Image.Image) -> dict[str, bytes]:
    img = img.convert("RGB")
    out = {}
    for name, fmt, kw in (("jpeg_q60", "JPEG", {"quality": 60}), ("webp", "WEBP", {"quality": 80})):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        out[name] = b.getvalue()
    half = img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.LANCZOS)
    band = img.copy()
    d = ImageDraw.Draw(band)
    d.rectangle([0, int(band.height * 0.88), band.width, band.height], fill="white")
    d.text((10, int(band.height * 0.9)), "photo of the day - share now", fill="black")
    w, h = img.size
    crop = img.crop((int(w * 0.05), int(h * 0.05), int(w * 0.95), int(h * 0.95)))
    for name, im in (("half_size", half), ("text_band", band), ("crop_5pct", crop)):
        b = io.BytesIO()
        im.save(b, "PNG")
        out[name] = b.getvalue()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-dataset", type=int, default=30)
    ap.add_argument("--out", default="benchmarks/results/stability.json")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"stability: {DATA} absent, nothing measured")
        return 0
    from kever.agent.reasoner import Reasoner

    reasoner = Reasoner.from_preset("offline")
    rng = random.Random(0)
    result = {"command": "python benchmarks/stability.py --per-dataset %d" % args.per_dataset, "load_average": os.getloadavg(), "sets": {}}
    t0 = time.time()
    for folder, labels in SETS.items():
        images = sorted((DATA / folder / "images").rglob("*.jpg"))
        if not images:
            continue
        sample = rng.sample(images, min(args.per_dataset, len(images)))
        base = reasoner.explain_many([str(p) for p in sample], labels=labels, rationale=False)
        flips: dict[str, list] = {}
        for p, j in zip(sample, base):
            for name, data in changes(Image.open(p)).items():
                k = reasoner.explain(data, labels=labels, rationale=False)
                flips.setdefault(name, []).append((j.label != k.label, j.stable is False))
        result["sets"][folder] = {
            "label_set": labels, "photos": len(sample),
            "flipped": {n: sum(f for f, _ in v) for n, v in flips.items()},
            "flipped_and_marked_unstable": {n: sum(f and u for f, u in v) for n, v in flips.items()},
            "marked_unstable": sum(j.stable is False for j in base),
        }
        print(folder, json.dumps(result["sets"][folder]), file=sys.stderr)
    result["seconds"] = round(time.time() - t0, 1)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
