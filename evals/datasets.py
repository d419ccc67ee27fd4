"""Loaders for the published benchmark formats (see ../shared/data/README.md).

Every loader returns ``Dataset`` (name, label set, samples sorted by id). Ids are stable
across runs (paths relative to the root), so ``--resume`` and ``compare`` can match samples.

Formats:

- ``flickr_ldl``: ``ground_truth.txt`` (space separated, header ``images-name Amusement ...``,
  vote counts per Mikels emotion) and ``images/NAME``.
- ``emotion6``: ``ground_truth.txt`` (tab separated, header optional): ``folder/N.jpg``,
  valence, arousal (1-9), then 7 probabilities (anger, disgust, fear, joy, sadness, surprise,
  neutral); images in ``images/<folder>/N.jpg``.
- ``emoset``: ``image/<emotion>/<emotion>_NNNNN.jpg``, ``annotation/<emotion>/...json`` and
  ``train.json`` / ``val.json`` / ``test.json`` lists of ``[emotion, image_path, annotation_path]``
  (``--split``, default ``test``). Annotation attributes land in ``Sample.attributes``.
- ``fi``, ``artphoto``: ``<emotion>/<emotion>_NNNN.jpg``, one folder per Mikels class.
- ``twitter``: Twitter I lists, lines ``name.jpg 0|1`` (0 negative, 1 positive) in a ``.txt``
  file (``--split NAME`` picks ``NAME.txt``, e.g. ``5agree``; else the only list in the root);
  images in ``images/`` or beside the list.
- ``folder``: any class-subfolder tree; labels are the folder names (Mikels order when they are
  the Mikels classes, else sorted).
- ``csv``: a manifest with a header: ``image`` (path, relative to the CSV's folder), optional
  ``id``, ``label``, ``valence``, ``arousal`` and ``p_<label>`` distribution columns.
  ``--split`` names the CSV file (default ``manifest.csv`` or the only ``.csv`` in the root).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from kever.errors import InputError
from kever.evals.labelsets import label_sets
from kever.evals.sample import Sample, Truth, truth_from_distribution, truth_from_label

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class Dataset(BaseModel):
    name: str
    root: str
    split: str | None = None
    label_set: str
    labels: list[str]
    samples: list[Sample]

    def prior(self) -> dict[str, float]:
        """Mean ground-truth distribution (one-hot / spread over ties when there is none)."""
        acc = {k: 0.0 for k in self.labels}
        n = 0
        for s in self.samples:
            t = s.truth
            if t.distribution:
                for k, v in t.distribution.items():
                    acc[k] = acc.get(k, 0.0) + v
                n += 1
            elif t.labels:
                for k in t.labels:
                    acc[k] += 1.0 / len(t.labels)
                n += 1
        if n == 0:
            return {k: 1.0 / len(self.labels) for k in self.labels}
        return {k: v / n for k, v in acc.items()}


Loader = Callable[[Path, "str | None"], Dataset]
LOADERS: dict[str, Loader] = {}


def loader(name: str):
    def register(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return register


def load_dataset(name: str, root: str | Path, split: str | None = None) -> Dataset:
    if name not in LOADERS:
        raise InputError(f"unknown dataset {name!r}", f"choose one of {', '.join(sorted(LOADERS))}")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"dataset root {root} is not a folder")
    ds = LOADERS[name](root, split)
    if not ds.samples:
        raise InputError(f"no samples found for dataset {name!r} under {root}" + (f" (split {split})" if split else ""))
    ds.samples.sort(key=lambda s: _natural(s.id))
    ids = [s.id for s in ds.samples]
    if len(set(ids)) != len(ids):
        raise InputError(f"dataset {name!r} under {root} has duplicate sample ids")
    return ds


def _natural(s: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputError(f"{what} not found: {path}", "check --root and --dataset")
    return path


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


@loader("flickr_ldl")
def load_flickr_ldl(root: Path, split: str | None = None) -> Dataset:
    if split:
        raise InputError(f"flickr_ldl has no splits (got --split {split!r})", "point --root at the split's folder instead")
    gt = _need(root / "ground_truth.txt", "Flickr_LDL ground_truth.txt")
    lines = [ln.split() for ln in gt.read_text(encoding="utf-8").splitlines() if ln.strip()]
    labels = label_sets()["mikels8"]
    if lines and not _is_number(lines[0][1]):
        header = [h.lower() for h in lines[0][1:]]
        if sorted(header) != sorted(labels):
            raise InputError(f"{gt}: header {lines[0]} does not name the 8 Mikels emotions")
        lines = lines[1:]
    else:
        header = labels
    samples = []
    for i, row in enumerate(lines):
        if len(row) != 9:
            raise InputError(f"{gt} line {i + 2}: expected a name and 8 vote counts, got {len(row)} fields")
        votes = {h: float(v) for h, v in zip(header, row[1:])}
        dist = {k: votes[k] for k in labels}
        samples.append(Sample(id=row[0], image=str(root / "images" / row[0]),
                              truth=truth_from_distribution(dist), label_set="mikels8"))
    return Dataset(name="flickr_ldl", root=str(root), split=split, label_set="mikels8", labels=labels, samples=samples)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


@loader("emotion6")
def load_emotion6(root: Path, split: str | None = None) -> Dataset:
    gt = _need(root / "ground_truth.txt", "Emotion6 ground_truth.txt")
    labels = label_sets()["emotion6"]
    samples = []
    for i, line in enumerate(gt.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        row = line.rstrip("\n").split("\t")
        if len(row) < 10 or not _is_number(row[1]):
            if i == 0:
                continue  # header
            raise InputError(f"{gt} line {i + 1}: expected path, valence, arousal and 7 probabilities")
        dist = dict(zip(labels, (float(x) for x in row[3:10])))
        name = row[0].strip()
        samples.append(Sample(id=name, image=str(root / "images" / name),
                              truth=truth_from_distribution(dist, valence=float(row[1]), arousal=float(row[2])),
                              label_set="emotion6"))
    return Dataset(name="emotion6", root=str(root), split=split, label_set="emotion6", labels=labels, samples=samples)


@loader("emoset")
def load_emoset(root: Path, split: str | None = None) -> Dataset:
    split = split or "test"
    lst = _need(root / f"{split}.json", f"EmoSet {split}.json")
    labels = label_sets()["mikels8"]
    samples = []
    for entry in json.loads(lst.read_text(encoding="utf-8")):
        emotion, image_rel, ann_rel = entry[0], entry[1], entry[2] if len(entry) > 2 else None
        emotion = emotion.lower()
        if emotion not in labels:
            raise InputError(f"{lst}: unknown EmoSet emotion {emotion!r}")
        attrs: dict = {}
        if ann_rel and (root / ann_rel).is_file():
            ann = json.loads((root / ann_rel).read_text(encoding="utf-8"))
            attrs = {k: v for k, v in ann.items() if k not in ("emotion", "image_id")}
        samples.append(Sample(id=Path(image_rel).stem, image=str(root / image_rel),
                              truth=truth_from_label(emotion), label_set="mikels8", attributes=attrs))
    return Dataset(name="emoset", root=str(root), split=split, label_set="mikels8", labels=labels, samples=samples)


def _class_folders(root: Path, name: str, labels: list[str] | None, label_set: str) -> Dataset:
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if labels is None:
        found = [d.name.lower() for d in dirs]
        mikels = label_sets()["mikels8"]
        if found and set(found) <= set(mikels):
            labels, label_set = mikels, "mikels8"
        else:
            labels = sorted(found)
    samples = []
    for d in dirs:
        cls = d.name.lower()
        if cls not in labels:
            raise InputError(f"{d}: folder {d.name!r} is not a class of {name} ({', '.join(labels)})")
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTS:
                samples.append(Sample(id=_rel(f, root), image=str(f), truth=truth_from_label(cls), label_set=label_set))
    return Dataset(name=name, root=str(root), label_set=label_set, labels=labels, samples=samples)


@loader("fi")
def load_fi(root: Path, split: str | None = None) -> Dataset:
    ds = _class_folders(root / split if split else root, "fi", label_sets()["mikels8"], "mikels8")
    ds.split = split
    return ds


@loader("artphoto")
def load_artphoto(root: Path, split: str | None = None) -> Dataset:
    ds = _class_folders(root / split if split else root, "artphoto", label_sets()["mikels8"], "mikels8")
    ds.split = split
    return ds


@loader("folder")
def load_folder(root: Path, split: str | None = None) -> Dataset:
    ds = _class_folders(root / split if split else root, "folder", None, "custom")
    ds.split = split
    return ds


@loader("twitter")
def load_twitter(root: Path, split: str | None = None) -> Dataset:
    if split:
        lst = _need(root / (split if split.endswith(".txt") else f"{split}.txt"), "Twitter list")
    else:
        lists = sorted(root.glob("*.txt"))
        if len(lists) != 1:
            raise InputError(f"{root} holds {len(lists)} .txt lists", "pick one with --split NAME (e.g. 5agree)")
        lst = lists[0]
    img_dir = root / "images" if (root / "images").is_dir() else lst.parent
    names = {"0": "negative", "1": "positive"}
    samples = []
    for i, line in enumerate(lst.read_text(encoding="utf-8").splitlines()):
        row = line.split()
        if not row:
            continue
        if len(row) != 2 or row[1] not in names:
            raise InputError(f"{lst} line {i + 1}: expected 'name.jpg 0|1', got {line!r}")
        samples.append(Sample(id=row[0], image=str(img_dir / row[0]), truth=truth_from_label(names[row[1]]), label_set="sentiment"))
    return Dataset(name="twitter", root=str(root), split=split, label_set="sentiment",
                   labels=label_sets()["sentiment"], samples=samples)


@loader("csv")
def load_csv(root: Path, split: str | None = None) -> Dataset:
    if split:
        path = _need(root / (split if split.endswith(".csv") else f"{split}.csv"), "CSV manifest")
    elif (root / "manifest.csv").is_file():
        path = root / "manifest.csv"
    else:
        found = sorted(root.glob("*.csv"))
        if len(found) != 1:
            raise InputError(f"{root} holds {len(found)} .csv files", "name the manifest with --split NAME")
        path = found[0]
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "image" not in rows[0]:
        raise InputError(f"{path}: a CSV manifest needs a header with an 'image' column")
    pcols = [c for c in rows[0] if c.startswith("p_")]
    if pcols:
        labels = [c[2:].lower() for c in pcols]
    else:
        labels = sorted({r["label"].strip().lower() for r in rows if r.get("label", "").strip()})
    label_set = next((n for n, ls in label_sets().items() if ls == labels or (not pcols and set(labels) <= set(ls))), "custom")
    if label_set != "custom":
        labels = label_sets()[label_set]
    samples = []
    for i, r in enumerate(rows):
        extra = {k: float(r[k]) for k in ("valence", "arousal") if r.get(k, "").strip()}
        if pcols:
            truth = truth_from_distribution({c[2:].lower(): float(r[c] or 0) for c in pcols}, **extra)
        elif r.get("label", "").strip():
            truth = truth_from_label(r["label"].strip().lower(), **extra)
        else:
            truth = Truth(**extra)
        img = Path(r["image"])
        img = img if img.is_absolute() else path.parent / img
        samples.append(Sample(id=(r.get("id") or "").strip() or r["image"], image=str(img), truth=truth, label_set=label_set))
    return Dataset(name="csv", root=str(root), split=split, label_set=label_set, labels=labels, samples=samples)
