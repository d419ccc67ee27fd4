"""How much of what perception can say the knowledge maps to emotions, and a fixed sample of it.

    .venv/bin/python benchmarks/knowledge_coverage.py      # -> benchmarks/results/knowledge_coverage.json

Perception's vocabulary: the 1,000 ImageNet classes (objects/scenes), the 7 FER2013 expressions
(faces), and the measured colour/lighting/composition cues of agent/cue_rules.yaml. For each,
whether a knowledge entry with emotion weights answers it, and by which rule
(knowledge/derive_imagenet.py for ImageNet). The sample is every 50th ImageNet class (a fixed
rule, not a choice).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import yaml

from kever.agent.cues import rules
from kever.knowledge.loader import load_knowledge
from kever.tools.perception.objects import imagenet_classes, imagenet_wnids
from kever.tools.perception.schema import EXPRESSIONS


def main() -> int:
    kn = load_knowledge()
    entries = {e.id: e for cf in kn.cue_files.values() for e in cf.entries}
    r = rules()
    wnids, names = imagenet_wnids(), imagenet_classes()
    derived = {e.id: e for e in kn.cue_files["cues/imagenet.yaml"].entries}
    by_rule: Counter = Counter()
    strengths = []
    for e in derived.values():
        strengths.append(sum(e.weights.values()))
        if "kever entry" in e.text:
            by_rule["a curated entry (name or WordNet ancestor)"] += 1
        elif "EmoLex" in e.text:
            by_rule["lexicon only (EmoLex, maybe SenticNet)"] += 1
        else:
            by_rule["SenticNet only"] += 1
    direct = sum("via its name" in e.text for e in derived.values())
    ancestors = [int(m.group(1)) for e in derived.values() if (m := re.search(r"(\d+) levels? up in WordNet", e.text))]
    measured = [entry for rule in r["scalar_rules"] for entry in rule["entries"]] + list(r["colour_entries"].values())
    faces = {x: r["face_entries"].get(x) for x in EXPRESSIONS}
    strengths.sort()
    out = {
        "imagenet": {
            "classes": len(wnids), "with_association": len(derived), "share": round(len(derived) / len(wnids), 3),
            "by_rule": dict(by_rule), "curated_by_own_name": direct, "curated_by_ancestor": len(ancestors),
            "ancestor_depths": dict(sorted(Counter(ancestors).items())),
            "strength_quartiles": [round(strengths[int(q * (len(strengths) - 1))], 3) for q in (0.25, 0.5, 0.75)],
            "without": [n for w, n in zip(wnids, names) if f"imagenet.{w}" not in derived][:40],
        },
        "faces": {"expressions": len(EXPRESSIONS), "mapped": sum(bool(v) and v in entries for v in faces.values()), "entries": faces},
        "measured_cues": {"rules": len(measured), "mapped": sum(m in entries for m in measured),
                          "missing": sorted({m for m in measured if m not in entries})},
        "sample_every_50th_class": [
            {"class": names[i], "weights": derived[f"imagenet.{wnids[i]}"].weights, "text": derived[f"imagenet.{wnids[i]}"].text}
            if f"imagenet.{wnids[i]}" in derived else {"class": names[i], "weights": None}
            for i in range(0, 1000, 50)
        ],
    }
    path = Path("benchmarks/results/knowledge_coverage.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(yaml.safe_dump({k: v for k, v in out.items() if k != "sample_every_50th_class"}, sort_keys=False, width=120))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
