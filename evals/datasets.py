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


def _read_text(path: Path) -> str:
    """The file's text; a binary or non-UTF-8 file is an InputError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start:e.start + 1]!r}); "
                         "expected a text file", "check that --root points at the dataset's own files") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None


def _number(value: str, where: str, what: str) -> float:
    """``value`` as a finite float, else an InputError saying where and what was expected."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected a number for {what}, got {_quote(value)}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise InputError(f"{where}: {what} is {_quote(value)}, not a finite number")
    return x


def _votes(values: dict[str, str], where: str, what: str = "vote") -> dict[str, float]:
    """A vote/probability row: finite, non-negative numbers, not all zero (else an InputError)."""
    out = {k: _number(v, where, f"the {k} {what}") for k, v in values.items()}
    negative = [k for k, v in out.items() if v < 0]
    if negative:
        raise InputError(f"{where}: {what}s must not be negative ({', '.join(f'{k} {out[k]:g}' for k in negative)})")
    if not any(out.values()):
        raise InputError(f"{where}: the {what}s are all zero; expected at least one positive {what}",
                         "fix or remove the row")
    return out


def _quote(value, limit: int = 40) -> str:
    text = str(value)
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _json(path: Path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None


@loader("flickr_ldl")
def load_flickr_ldl(root: Path, split: str | None = None) -> Dataset:
    if split:
        raise InputError(f"flickr_ldl has no splits (got --split {split!r})", "point --root at the split's folder instead")
    gt = _need(root / "ground_truth.txt", "Flickr_LDL ground_truth.txt")
    lines = [(i + 1, ln.split()) for i, ln in enumerate(_read_text(gt).splitlines()) if ln.strip()]
    labels = label_sets()["mikels8"]
    header = labels
    if lines and len(lines[0][1]) == 9 and not _is_number(lines[0][1][1]):
        header = [h.lower() for h in lines[0][1][1:]]
        if sorted(header) != sorted(labels):
            raise InputError(f"{gt} line {lines[0][0]}: header {_quote(' '.join(lines[0][1]), 120)} does not name "
                             "the 8 Mikels emotions")
        lines = lines[1:]
    samples = []
    for n, row in lines:
        if len(row) != 9:
            raise InputError(f"{gt} line {n}: expected a name and 8 vote counts, got {len(row)} field(s)")
        votes = _votes(dict(zip(header, row[1:])), f"{gt} line {n}")
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
    for i, line in enumerate(_read_text(gt).splitlines()):
        if not line.strip():
            continue
        row = line.rstrip("\n").split("\t")
        where = f"{gt} line {i + 1}"
        if i == 0 and (len(row) < 2 or not _is_number(row[1])):
            continue  # header
        if len(row) != 10:
            raise InputError(f"{where}: expected 10 tab-separated fields (path, valence, arousal and 7 probabilities), "
                             f"got {len(row)}")
        valence, arousal = _number(row[1], where, "valence"), _number(row[2], where, "arousal")
        dist = _votes(dict(zip(labels, row[3:10])), where, "probability")
        name = row[0].strip()
        samples.append(Sample(id=name, image=str(root / "images" / name),
                              truth=truth_from_distribution(dist, valence=valence, arousal=arousal),
                              label_set="emotion6"))
    return Dataset(name="emotion6", root=str(root), split=split, label_set="emotion6", labels=labels, samples=samples)


@loader("emoset")
def load_emoset(root: Path, split: str | None = None) -> Dataset:
    split = split or "test"
    lst = _need(root / f"{split}.json", f"EmoSet {split}.json")
    labels = label_sets()["mikels8"]
    samples = []
    entries = _json(lst)
    if not isinstance(entries, list):
        raise InputError(f"{lst}: expected a JSON list of [emotion, image_path, annotation_path], "
                         f"got a {type(entries).__name__}")
    for n, entry in enumerate(entries, 1):
        if (not isinstance(entry, list) or len(entry) not in (2, 3)
                or not all(isinstance(x, str) for x in entry)):
            raise InputError(f"{lst} entry {n}: expected [emotion, image_path, annotation_path] (strings), "
                             f"got {_quote(json.dumps(entry))}")
        emotion, image_rel, ann_rel = entry[0], entry[1], entry[2] if len(entry) > 2 else None
        emotion = emotion.lower()
        if emotion not in labels:
            raise InputError(f"{lst} entry {n}: unknown EmoSet emotion {_quote(emotion)}")
        attrs: dict = {}
        if ann_rel and (root / ann_rel).is_file():
            ann = _json(root / ann_rel)
            if not isinstance(ann, dict):
                raise InputError(f"{root / ann_rel}: expected a JSON object of attributes, got a {type(ann).__name__}")
            attrs = {k: v for k, v in ann.items() if k not in ("emotion", "image_id")}
        samples.append(Sample(id=Path(image_rel).stem, image=str(root / image_rel),
                              truth=truth_from_label(emotion), label_set="mikels8", attributes=attrs))
    return Dataset(name="emoset", root=str(root), split=split, label_set="mikels8", labels=labels, samples=samples)


def _class_folders(root: Path, name: str, labels: list[str] | None, label_set: str) -> Dataset:
    if not root.is_dir():
        raise InputError(f"{name} folder not found: {root}", "check --root and --split (a split is a subfolder)")
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
    for i, line in enumerate(_read_text(lst).splitlines()):
        row = line.split()
        if not row:
            continue
        if len(row) != 2 or row[1] not in names:
            raise InputError(f"{lst} line {i + 1}: expected 'name.jpg 0|1', got {_quote(line)}")
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
    import io

    text = _read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
        rows = [(reader.line_num, r) for r in reader]
    except csv.Error as e:
        raise InputError(f"{path} line {reader.line_num}: not a readable CSV row ({e})") from None
    header = reader.fieldnames or []
    if "image" not in header:
        raise InputError(f"{path} line 1: a CSV manifest needs a header with an 'image' column")
    for n, r in rows:
        if "\0extra" in r or None in r.values():
            got = len([v for v in r.values() if v is not None]) - ("\0extra" in r) + len(r.get("\0extra") or [])
            raise InputError(f"{path} line {n}: expected {len(header)} columns ({', '.join(header)}), got {got}")
        if not (r.get("image") or "").strip():
            raise InputError(f"{path} line {n}: the 'image' column is empty; expected a path to the image")
    rows = [dict(r, _line=n) for n, r in rows]
    if not rows:
        raise InputError(f"{path}: the manifest has a header but no rows")
    pcols = [c for c in rows[0] if c.startswith("p_")]
    if pcols:
        labels = [c[2:].lower() for c in pcols]
    else:
        labels = sorted({r["label"].strip().lower() for r in rows if r.get("label", "").strip()})
    label_set = next((n for n, ls in label_sets().items() if ls == labels or (not pcols and set(labels) <= set(ls))), "custom")
    if label_set != "custom":
        labels = label_sets()[label_set]
    samples = []
    for r in rows:
        where = f"{path} line {r['_line']}"
        extra = {k: _number(r[k], where, k) for k in ("valence", "arousal") if (r.get(k) or "").strip()}
        if pcols:
            truth = truth_from_distribution(_votes({c[2:].lower(): r[c] or "0" for c in pcols}, where, "probability"),
                                            **extra)
        elif r.get("label", "").strip():
            truth = truth_from_label(r["label"].strip().lower(), **extra)
        else:
            truth = Truth(**extra)
        img = Path(r["image"])
        img = img if img.is_absolute() else path.parent / img
        samples.append(Sample(id=(r.get("id") or "").strip() or r["image"], image=str(img), truth=truth, label_set=label_set))
    return Dataset(name="csv", root=str(root), split=split, label_set=label_set, labels=labels, samples=samples)
