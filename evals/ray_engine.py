"""``--engine ray``: the same evaluation on Ray Data, for many machines.

``ray.data.from_items(samples).map_batches(JudgeActor, concurrency=N, batch_size=B)``: each
actor builds the system once (models load once per actor) and judges batches with the same
``process_batch`` as the local engine; the driver streams the records into the same log, so
``--resume`` and the metrics are engine-independent. Connects to ``RAY_ADDRESS`` when set,
else starts a local Ray instance. Ray is the ``ray`` extra and is imported only here.
"""

from __future__ import annotations

import os
import socket
from typing import Callable

from kever.errors import missing_package
from kever.evals.record import Record
from kever.evals.rundir import RunConfig
from kever.evals.sample import Sample


class JudgeActor:
    """A Ray Data actor: builds the system in ``__init__``, judges a batch per call."""

    def __init__(self, config_json: str, prior: dict, factory=None):
        from kever.evals.systems import resolve_factory

        self.config = RunConfig.model_validate_json(config_json)
        build = factory if callable(factory) else resolve_factory(factory or self.config.factory)
        self.system = build(preset=self.config.preset, system=self.config.system,
                            ablate=tuple(self.config.ablate), prior=prior)
        self.worker = f"ray:{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from kever.evals.runner import process_batch
        from kever.evals.systems import labels_argument

        samples = [Sample.model_validate_json(s) for s in batch["sample"]]
        recs = process_batch(self.system, samples, labels_argument(self.config.label_set, self.config.labels),
                             self.config.rationale, self.worker)
        models = __import__("json").dumps(dict(getattr(self.system, "models", {}) or {}))
        return {"record": np.array([r.model_dump_json() for r in recs], dtype=object),
                "models": np.array([models] * len(recs), dtype=object)}


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise missing_package("ray[data]", "ray") from e
    return ray


def ensure_ray(num_cpus: int | None = None) -> None:
    ray = _ray()
    if not ray.is_initialized():
        addr = os.environ.get("RAY_ADDRESS")
        if addr:
            ray.init(address=addr, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)


def run_ray(samples: list[Sample], config: RunConfig, prior: dict, factory, *, batch_size: int = 8,
            concurrency: int = 2, sink: Callable[[Record], None]) -> dict[str, str]:
    import json

    ray = _ray()
    ensure_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    import logging

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    factory_arg = factory if callable(factory) else None
    ds = ray.data.from_items([{"sample": s.model_dump_json()} for s in samples])
    out = ds.map_batches(JudgeActor, batch_size=batch_size, concurrency=concurrency, batch_format="numpy",
                         fn_constructor_kwargs={"config_json": config.model_dump_json(), "prior": prior,
                                                "factory": factory_arg})
    models: dict[str, str] = {}
    for row in out.iter_rows():
        rec = Record.model_validate_json(row["record"])
        models = models or json.loads(row["models"])
        sink(rec)
    return models
