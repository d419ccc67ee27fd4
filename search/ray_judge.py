"""``kever index --engine ray``: the photos judged by Ray Data actors, for collections larger
than one machine; the driver embeds, commits and reports exactly as the local engine does,
so the index is the same.

Each actor loads the preset once (``Reasoner.from_preset``) and judges its batches with
``explain_many``; judgments travel back as JSON. The photo paths must be readable by every
worker (a shared filesystem). Connects to ``RAY_ADDRESS`` when set, else starts a local Ray
(the ``ray`` extra; imported only here).
"""

from __future__ import annotations

from typing import Iterator

from kever.errors import InputError, KeverError


class IndexActor:
    def __init__(self, preset: str):
        from kever.agent.reasoner import Reasoner

        self.reasoner = Reasoner.from_preset(preset)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        paths = [str(p) for p in batch["path"]]
        judged = self.reasoner.explain_many(paths, rationale=False, batch_size=8)
        ok = ["" if isinstance(j, KeverError) else j.model_dump_json() for j in judged]
        err = [str(j) if isinstance(j, KeverError) else "" for j in judged]
        return {"path": np.array(paths, dtype=object), "judgment": np.array(ok, dtype=object),
                "error": np.array(err, dtype=object)}


def judge_ray(paths: list[str], preset: str, batch_size: int, concurrency: int) -> Iterator[list[tuple[str, object]]]:
    """Batches of (path, Judgment or the error) as the actors finish them (in no set order)."""
    import logging

    from kever.agent.judgment import Judgment
    from kever.evals.ray_engine import _ray, ensure_ray

    ray = _ray()
    ensure_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ds = ray.data.from_items([{"path": p} for p in paths])
    out = ds.map_batches(IndexActor, batch_size=batch_size, concurrency=concurrency, batch_format="numpy",
                         fn_constructor_kwargs={"preset": preset})
    for b in out.iter_batches(batch_size=batch_size, batch_format="numpy"):
        yield [(str(p), Judgment.model_validate_json(j) if j else InputError(str(e)))
               for p, j, e in zip(b["path"], b["judgment"], b["error"])]
