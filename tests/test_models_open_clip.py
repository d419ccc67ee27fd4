"""open_clip through load_aligner: a tiny CLIP config with pretrained=None (random
weights), a local checkpoint file, and clear errors for weights that are not here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kever.agent.models import Aligner, ModelSpec, load_aligner
from kever.agent.models.tiny import tiny_clip_config
from kever.errors import ModelUnavailable

pytestmark = pytest.mark.slow

TEXTS = ["a photo evoking awe", "a photo evoking fear", "a photo evoking amusement"]


@pytest.fixture(scope="session")
def clip_cfg(tmp_path_factory):
    return tiny_clip_config(tmp_path_factory.mktemp("clip_cfg"))


@pytest.fixture(scope="session")
def tiny_clip(clip_cfg):
    return load_aligner(ModelSpec(backend="open_clip", model="kever-tiny-clip", options={"config_file": str(clip_cfg)}))


def test_encodes_normalised_embeddings_of_consistent_dims(tiny_clip, demo_image):
    assert isinstance(tiny_clip, Aligner)
    ims = [Image.open(demo_image), Image.new("L", (50, 20), 128)]  # any mode/size
    i = tiny_clip.encode_images(ims)
    t = tiny_clip.encode_texts(TEXTS)
    assert i.shape == (2, 32) and t.shape == (3, 32) and i.dtype == t.dtype == np.float32
    assert np.allclose(np.linalg.norm(i, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    assert not np.allclose(t[0], t[1])
    assert np.allclose(tiny_clip.encode_texts(TEXTS[:1]), t[:1], atol=1e-5)
    assert tiny_clip.logit_scale == pytest.approx(1 / 0.07, rel=1e-3)  # CLIP's initial temperature
    assert tiny_clip.encode_texts([]).shape == (0, 32)


def test_batches_match_single_calls(clip_cfg, demo_image):
    al = load_aligner(ModelSpec(backend="open_clip", model="kever-tiny-clip",
                                options={"config_file": str(clip_cfg), "batch_size": 2}))
    ims = [Image.open(demo_image), Image.new("RGB", (40, 40), "red"), Image.new("RGB", (40, 40), "blue")]
    together = al.encode_images(ims)
    assert np.allclose(together[2], al.encode_images(ims[2:])[0], atol=1e-5)


def test_local_checkpoint_file_loads_the_same_weights(tiny_clip, clip_cfg, tmp_path):
    import torch

    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), ckpt)
    again = load_aligner(ModelSpec(backend="open_clip", model="kever-tiny-clip", pretrained=str(ckpt),
                                   options={"config_file": str(clip_cfg)}))
    assert np.allclose(again.encode_texts(TEXTS), tiny_clip.encode_texts(TEXTS), atol=1e-5)
    fresh = load_aligner(ModelSpec(backend="open_clip", model="kever-tiny-clip", options={"config_file": str(clip_cfg)}))
    assert not np.allclose(fresh.encode_texts(TEXTS), tiny_clip.encode_texts(TEXTS), atol=1e-3)


def test_absent_weights_are_model_unavailable(clip_cfg):
    with pytest.raises(ModelUnavailable):
        load_aligner(ModelSpec(backend="open_clip", model="hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"))
    with pytest.raises(ModelUnavailable):
        load_aligner(ModelSpec(backend="open_clip", model="no-such-arch-xyz"))
