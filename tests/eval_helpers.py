"""Fixture builders for the eval tests: tiny datasets written in each published format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

MIKELS8 = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"]


def write_image(path: Path, seed: int, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(path)
    return path


def make_flickr(root: Path, votes: list[list[int]]) -> Path:
    lines = ["images-name Amusement Awe Contentment Excitement Anger Disgust Fear Sadness"]
    for i, v in enumerate(votes):
        write_image(root / "images" / f"{i + 1}.jpg", i)
        lines.append(f"{i + 1}.jpg " + " ".join(str(x) for x in v))
    (root / "ground_truth.txt").write_text("\n".join(lines) + "\n")
    return root


def make_emotion6(root: Path) -> Path:
    rows = [("anger/1.jpg", 3.1, 6.2, [0.6, 0.1, 0.1, 0.0, 0.1, 0.1, 0.0]),
            ("joy/2.jpg", 7.5, 5.0, [0.0, 0.0, 0.0, 0.7, 0.0, 0.2, 0.1]),
            ("fear/3.jpg", 2.0, 7.1, [0.1, 0.1, 0.4, 0.0, 0.0, 0.4, 0.0])]  # fear/surprise tie
    lines = ["[image_filename]\t[valence]\t[arousal]\t[prob. anger]\t[prob. disgust]\t[prob. fear]\t[prob. joy]\t[prob. sadness]\t[prob. surprise]\t[prob. neutral]"]
    for i, (name, v, a, p) in enumerate(rows):
        write_image(root / "images" / name, 10 + i)
        lines.append("\t".join([name, str(v), str(a)] + [str(x) for x in p]))
    (root / "ground_truth.txt").write_text("\n".join(lines) + "\n")
    return root


def make_emoset(root: Path) -> Path:
    splits = {"train": [("awe", 1), ("fear", 2)], "val": [("anger", 3)], "test": [("amusement", 4), ("sadness", 5), ("awe", 6)]}
    for split, items in splits.items():
        entries = []
        for emo, n in items:
            img = f"image/{emo}/{emo}_{n:05d}.jpg"
            ann = f"annotation/{emo}/{emo}_{n:05d}.json"
            write_image(root / img, 20 + n)
            (root / ann).parent.mkdir(parents=True, exist_ok=True)
            (root / ann).write_text(json.dumps({"emotion": emo, "image_id": f"{emo}_{n:05d}", "brightness": 0.4,
                                                 "colorfulness": 0.7, "scene": "beach", "object": ["person"],
                                                 "facial_expression": "happy", "human_action": "running"}))
            entries.append([emo, img, ann])
        (root / f"{split}.json").write_text(json.dumps(entries))
    return root


def make_class_folders(root: Path, per_class: dict[str, int], prefix_class: bool = True) -> Path:
    seed = 100
    for cls, n in per_class.items():
        for i in range(n):
            name = f"{cls}_{i:04d}.jpg" if prefix_class else f"{i:04d}.jpg"
            write_image(root / cls / name, seed)
            seed += 1
    return root


def make_twitter(root: Path, items: list[tuple[str, int]], list_name: str = "5agree") -> Path:
    for i, (name, _) in enumerate(items):
        write_image(root / "images" / name, 200 + i)
    (root / f"{list_name}.txt").write_text("\n".join(f"{n} {y}" for n, y in items) + "\n")
    return root


def make_csv(root: Path) -> Path:
    write_image(root / "a.jpg", 300)
    write_image(root / "sub" / "b.jpg", 301)
    (root / "manifest.csv").write_text(
        "id,image,valence,arousal,p_joy,p_calm,p_dread\n"
        "x1,a.jpg,0.5,0.2,0.7,0.3,0.0\n"
        "x2,sub/b.jpg,-0.4,0.9,0.0,0.5,0.5\n")
    return root


def run_cli(args, capsys) -> tuple[int, str, str]:
    """``kever ARGS`` in-process: (exit code, stdout, stderr)."""
    from kever.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
