"""Benchmark emotion search: retrieval quality, indexing throughput and size, query latency,
incremental re-indexing. One command (rerun it whenever how judgments are decided changes):

    .venv/bin/python benchmarks/search_bench.py [--out benchmarks/results/search.json] [--skip-baseline]

- indexes ../shared/data/emotion6_dev (240 photos) and flickr_ldl_dev (350) with the
  ``offline`` preset (no rationale) into runs/search/ (rebuilt from scratch each run);
- retrieval: for each emotion, ``Index.search(emotion=X)`` over the whole collection, scored
  against the folder label (emotion6) or the strict vote majority (flickr; ties count as
  relevant to nothing): precision@10 and average precision, beside a random ranking (expected
  values: P@10 = prevalence; AP by 2,000 random permutations) and beside ranking the same way
  (the word's Mikels-8 profile . the photo's distribution) by the ``text-zeroshot`` baseline's
  scores (agent/baselines.py);
- re-index of the unchanged flickr folder with the real command (``kever index``, a new
  process): seconds, and photos judged (must be 0);
- query latency p50/p95 at 1k, 10k and 100k entries (the real rows repeated with random
  vectors): emotion, free text (MiniLM encode included), like-an-indexed-photo, and emotion
  with a valence and folder filter.

Figures are measured, never asserted; the machine is shared (load average recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from kever.paths import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "search"
MIKELS8 = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def truth_emotion6(root: Path) -> dict[str, str]:
    return {p.relative_to(root / "images").as_posix(): p.parent.name for p in sorted((root / "images").rglob("*.jpg"))}


def truth_flickr(root: Path) -> dict[str, str | None]:
    lines = (root / "ground_truth.txt").read_text().split("\n")
    heads = [h.lower() for h in lines[0].split()[1:]]
    out = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        name, *votes = line.split()
        v = np.array([float(x) for x in votes])
        top = np.flatnonzero(v == v.max())
        out[name] = heads[top[0]] if len(top) == 1 else None
    return out


def ap(ranked_rel: list[bool]) -> float:
    hits, s = 0, 0.0
    for i, r in enumerate(ranked_rel, 1):
        if r:
            hits += 1
            s += hits / i
    return s / max(hits, 1) if hits else 0.0


def random_ap(n: int, r: int, draws: int = 2000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        pos = np.sort(rng.choice(n, size=r, replace=False)) + 1
        out.append(float(np.mean(np.arange(1, r + 1) / pos)))
    return float(np.mean(out))


def quality(rank_fn, truth: dict, emotions: list[str]) -> dict:
    """rank_fn(emotion) -> every path, best first."""
    per, n = {}, len(truth)
    for e in emotions:
        ranked = rank_fn(e)
        rel = [truth.get(p) == e for p in ranked]
        r = sum(v == e for v in truth.values())
        per[e] = {"relevant": r, "p_at_10": round(sum(rel[:10]) / 10, 3), "ap": round(ap(rel), 4),
                  "random_p_at_10": round(r / n, 3), "random_ap": round(random_ap(n, r), 4)}
    keys = ("p_at_10", "ap", "random_p_at_10", "random_ap")
    per["mean"] = {k: round(statistics.mean(per[e][k] for e in emotions), 4) for k in keys}
    return per


def index_dataset(name: str, images: Path, reasoner) -> tuple[Path, dict]:
    from kever.search.build import build_index

    dest = RUNS / name
    shutil.rmtree(dest, ignore_errors=True)
    t0 = time.perf_counter()
    rep = build_index(images, dest, reasoner_factory=lambda p: reasoner, preset="offline")
    wall = time.perf_counter() - t0
    size = du(dest)
    return dest, {"photos": rep.photos, "skipped": len(rep.skipped), "seconds": round(wall, 2),
                  "photos_per_s": round(rep.photos / wall, 3), "judging_photos_per_s": rep.photos_per_s,
                  "index_bytes": size, "bytes_per_photo": round(size / max(rep.photos, 1)), "load_avg": load()}


def reindex_cli(images: Path, dest: Path) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([str(ROOT / ".venv/bin/kever"), "index", str(images), "--index", str(dest), "--json"],
                       capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    rep = json.loads(r.stdout)
    return {"seconds_wall_new_process": round(wall, 2), "seconds_in_run": rep["seconds"], "judged": rep["judged"],
            "unchanged": rep["unchanged"], "new": rep["new"], "changed": rep["changed"], "deleted": rep["deleted"],
            "exit_code": r.returncode}


def latency(base: Path, reasoner, sizes=(1_000, 10_000, 100_000), runs: int = 25) -> dict:
    """Synthetic indexes of ``sizes`` rows: the real rows of ``base`` repeated, with random
    unit text vectors and Dirichlet emotion distributions; folders spread over 50 names."""
    import pyarrow as pa

    from kever.search.index import Index
    from kever.search.store import Manifest, Store, schema

    src = Store.open(base)
    real = src.get("path != ''", columns=None, limit=100_000)
    dim = src.manifest.dim
    rng = np.random.default_rng(0)
    out = {}
    queries = ["calm evening by the sea", "a crowded street at night", "children laughing at a party",
               "an abandoned house in the rain", "mountains under a stormy sky"]
    for n in sizes:
        dest = RUNS / f"synthetic_{n}"
        shutil.rmtree(dest, ignore_errors=True)
        m = Manifest(root=src.manifest.root, preset=src.manifest.preset, embedder=src.manifest.embedder, dim=dim)
        store = Store.create(dest, m)
        for start in range(0, n, 20_000):
            k = min(20_000, n - start)
            t = rng.standard_normal((k, dim)).astype(np.float32)
            t /= np.linalg.norm(t, axis=1, keepdims=True)
            p = rng.dirichlet(np.full(8, 0.5), size=k).astype(np.float32)
            rows = []
            for i in range(k):
                r = dict(real[(start + i) % len(real)])
                j = start + i
                r.update(path=f"f{j % 50:02d}/{j}.jpg", folder=f"f{j % 50:02d}/", sha256=f"{j:064x}",
                         canonical=p[i].tolist(), vector=np.concatenate([t[i], p[i]]).tolist(),
                         valence=float(rng.uniform(-1, 1)), arousal=float(rng.uniform(0, 1)))
                r.setdefault("versions", "{}")
                r.setdefault("text", "")
                r.setdefault("indexed_at", 0.0)
                rows.append({f.name: r.get(f.name) for f in schema(dim)})
            store.table.add(pa.Table.from_pylist(rows, schema=schema(dim)))
        store.compact()
        idx = Index(Store.open(dest), reasoner)
        idx.search("warm-up query", limit=10)
        idx.search(emotion="awe", limit=10)
        like_file = dest / "like.jpg"
        shutil.copy(Path(src.manifest.root) / real[0]["path"], like_file)
        idx.store.table.update(where="path = 'f00/0.jpg'", values={"sha256": __import__("hashlib").sha256(
            like_file.read_bytes()).hexdigest()})
        modes = {
            "emotion": lambda i: idx.search(emotion=MIKELS8[i % 8], limit=10),
            "text": lambda i: idx.search(queries[i % len(queries)] + f" {i}", limit=10),
            "like": lambda i: idx.search(like=like_file, limit=10),
            "emotion_valence_folder": lambda i: idx.search(emotion=MIKELS8[i % 8], valence=(0.2, 1.0),
                                                           folder=f"f{i % 50:02d}/", limit=10),
        }
        res = {}
        for name, fn in modes.items():
            ts = []
            for i in range(runs):
                t0 = time.perf_counter()
                fn(i)
                ts.append(time.perf_counter() - t0)
            ts.sort()
            res[name] = {"p50_ms": round(1000 * statistics.median(ts), 1),
                         "p95_ms": round(1000 * ts[min(len(ts) - 1, int(0.95 * len(ts)))], 1)}
        res["index_bytes"] = du(dest)
        res["load_avg"] = load()
        out[str(n)] = res
        print(f"latency {n}: {json.dumps(res)}", file=sys.stderr)
        shutil.rmtree(dest, ignore_errors=True)
    return out


def main() -> None:
    ap_ = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap_.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/search.json")
    ap_.add_argument("--skip-baseline", action="store_true", help="leave out the text-zeroshot ranking")
    ap_.add_argument("--sizes", default="1000,10000,100000")
    args = ap_.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("search_bench: ../shared/data is absent; nothing to measure")
    from kever.agent.reasoner import Reasoner
    from kever.search.index import Index
    from kever.search.query import emotion_profile

    result: dict = {"load_avg_start": load(), "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    t0 = time.perf_counter()
    reasoner = Reasoner.from_preset("offline")
    result["reasoner_load_s"] = round(time.perf_counter() - t0, 2)
    result["fusion"] = reasoner.models.get("fusion")
    sets = {
        "emotion6_dev": (data / "emotion6_dev" / "images", truth_emotion6(data / "emotion6_dev"),
                         ["anger", "disgust", "fear", "joy", "sadness", "surprise"]),
        "flickr_ldl_dev": (data / "flickr_ldl_dev" / "images", truth_flickr(data / "flickr_ldl_dev"), list(MIKELS8)),
    }
    result["indexing"], result["retrieval"] = {}, {}
    baseline = None
    if not args.skip_baseline:
        from kever.agent.baselines import build_baseline

        baseline = build_baseline("text-zeroshot")
    for name, (images, truth, emotions) in sets.items():
        dest, stats = index_dataset(name, images, reasoner)
        result["indexing"][name] = stats
        print(f"indexed {name}: {json.dumps(stats)}", file=sys.stderr)
        idx = Index(Index.open(dest).store, reasoner)
        n = len(idx)
        q = quality(lambda e: [h.path for h in idx.search(emotion=e, limit=n).hits], truth, emotions)
        entry = {"photos": n, "relevance": "folder label" if name == "emotion6_dev" else "strict vote majority (ties: none)",
                 "kever_emotion_search": q}
        if baseline is not None:
            paths = sorted(truth)
            js = baseline.explain_many([images / p for p in paths], rationale=False)
            P = np.array([[j.canonical.get(m, 0.0) for m in MIKELS8] for j in js])
            prof = {e: emotion_profile(e, reasoner.c.kb) for e in emotions}

            def rank(e, P=P, paths=paths):
                s = P @ prof[e]
                return [paths[i] for i in np.argsort(-s, kind="stable")]

            entry["text_zeroshot"] = {k: v for k, v in quality(rank, truth, emotions).items()}
            for e in list(entry["text_zeroshot"]):
                entry["text_zeroshot"][e] = {k: entry["text_zeroshot"][e][k] for k in ("p_at_10", "ap")}
        result["retrieval"][name] = entry
        print(f"retrieval {name}: {json.dumps(entry['kever_emotion_search']['mean'])}", file=sys.stderr)
    result["reindex_unchanged_flickr"] = reindex_cli(sets["flickr_ldl_dev"][0], RUNS / "flickr_ldl_dev")
    print(f"reindex: {json.dumps(result['reindex_unchanged_flickr'])}", file=sys.stderr)
    result["latency"] = latency(RUNS / "flickr_ldl_dev", reasoner, sizes=[int(x) for x in args.sizes.split(",")])
    result["load_avg_end"] = load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    random.seed(0)
    main()
