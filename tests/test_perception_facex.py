"""facex as a second face-expression opinion (the experiment of issue 9; no shipped preset uses it)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("facex") is None, reason="facex not installed (scripts/setup.sh installs it)")]


def test_facex_is_averaged_into_the_same_faces(demo_image):
    from kever.tools.perception.faces import FaceExpressionReader
    from kever.images import load_image

    rgb = np.asarray(load_image(demo_image).image)
    alone = FaceExpressionReader()(rgb)
    both_reader = FaceExpressionReader(second_opinion="facex")
    both = both_reader(rgb)
    assert alone and [f.box for f in alone] == [f.box for f in both]  # same detections
    a = np.array(list(alone[0].expressions.model_dump().values()))
    b = np.array(list(both[0].expressions.model_dump().values()))
    assert b.sum() == pytest.approx(1.0, abs=1e-3) and not np.allclose(a, b)  # a second, different opinion
    assert both[0].dominant == "happy"  # the astronaut smiles; both models agree
    assert "facex" in both_reader.model_id
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    fx = both_reader.classify_facex(grey, [both[0].box])
    assert np.allclose(b, (a + fx[0]) / 2, atol=2e-3)  # the average of the two readings


def test_unknown_second_opinion_is_a_clear_error():
    from kever.errors import ModelUnavailable
    from kever.tools.perception.faces import FaceExpressionReader

    with pytest.raises(ModelUnavailable, match="unknown second face model"):
        FaceExpressionReader(second_opinion="deepface")
