"""``kever index --engine ray`` on a small local Ray instance: the same index as the local engine."""

from __future__ import annotations

import pytest

from kever.search.build import build_index
from kever.search.store import Store

from test_search_index import CountingFactory, make_collection

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_engine_writes_the_same_index(local_ray, tmp_path):
    from kever.agent.reasoner import Reasoner

    reasoner = Reasoner.from_preset("fake")
    local_root = make_collection(tmp_path / "local")
    ray_root = make_collection(tmp_path / "ray")
    build_index(local_root, reasoner_factory=CountingFactory(reasoner), preset="fake", batch_size=2)
    driver = CountingFactory(reasoner)
    rep = build_index(ray_root, reasoner_factory=driver, preset="fake", batch_size=2, engine="ray", concurrency=2)
    assert (rep.new, rep.judged, rep.photos) == (6, 5, 5)
    assert [s.path for s in rep.skipped] == ["broken.jpg"] and "not an image" in rep.skipped[0].reason
    assert driver.images == []  # the driver judged nothing: the actors did
    cols = ("path", "label", "sha256", "valence", "arousal")
    want = sorted(tuple(r[c] for c in cols) for r in Store.open(local_root / ".kever-index").scan(None))
    got = sorted(tuple(r[c] for c in cols) for r in Store.open(ray_root / ".kever-index").scan(None))
    assert got == want
    again = build_index(ray_root, reasoner_factory=driver, engine="ray")
    assert (again.judged, again.unchanged) == (0, 5)
