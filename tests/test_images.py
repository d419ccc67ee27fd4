"""Every bad-input case of issue 2 through kever.images.load_image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from badimages import ERROR_CASES, SPECIAL_CASES, huge_png_header, make_error_cases, make_good_cases
from kever.errors import InputError
from kever.images import load_image


@pytest.fixture
def error_cases(tmp_path):
    return make_error_cases(tmp_path / "bad")


@pytest.fixture
def good_cases(tmp_path):
    return make_good_cases(tmp_path / "good")


@pytest.mark.parametrize("case, words", ERROR_CASES)
def test_refused_with_one_line(error_cases, case, words):
    path = error_cases[case]
    with pytest.raises(InputError) as info:
        load_image(path)
    message = str(info.value)
    assert words in message
    assert "\n" not in message
    assert str(path) in message


def test_decompression_bomb_limit_from_env(tmp_path, monkeypatch):
    path = tmp_path / "ok.png"
    Image.new("RGB", (64, 48), "white").save(path)
    assert load_image(path).original_size == (64, 48)
    monkeypatch.setenv("KEVER_MAX_PIXELS", "1000")
    with pytest.raises(InputError, match="3,072 pixels, above the limit of 1,000"):
        load_image(path)


def test_real_over_limit_header_is_refused_before_decoding(tmp_path):
    # 100k x 100k = 10^10 pixels; decoding it would need 30 GB. The refusal must be instant.
    with pytest.raises(InputError, match="100000x100000"):
        load_image(huge_png_header(tmp_path / "bomb.png"))


def test_bytes_input_is_checked_too():
    with pytest.raises(InputError, match="empty"):
        load_image(b"")
    with pytest.raises(InputError, match="not an image"):
        load_image(b"GIF89a? no, just text")


@pytest.mark.parametrize("case", ["cmyk", "16bit", "palette", "rgba", "greyscale", "animated_gif", "exif_rotated"])
def test_odd_formats_become_rgb(good_cases, case):
    path, size = good_cases[case]
    im = load_image(path)
    assert im.image.mode == "RGB"
    assert im.image.size == size
    assert im.original_size == size
    assert np.asarray(im.image).shape == (size[1], size[0], 3)


def test_notes_say_what_was_changed(good_cases):
    notes = {case: " ".join(load_image(good_cases[case][0]).notes) for case in good_cases}
    assert "CMYK" in notes["cmyk"]
    assert "8 bits" in notes["16bit"]
    assert "transparency" in notes["rgba"]
    assert "first of 3 frames" in notes["animated_gif"]
    assert "orientation 6" in notes["exif_rotated"]


def test_transparent_pixels_become_white(good_cases):
    rgb = np.asarray(load_image(good_cases["rgba"][0]).image)
    assert (rgb[:, :40] == 255).all()
    assert rgb[:, 56:].std() > 20  # the opaque half keeps its noise


def test_greyscale_and_16bit_have_equal_channels(good_cases):
    for case in ("greyscale", "16bit"):
        rgb = np.asarray(load_image(good_cases[case][0]).image).astype(int)
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        assert rgb.std() > 20, case  # 16-bit values were scaled, not clipped to black/white


def test_animated_gif_uses_first_frame(good_cases):
    rgb = np.asarray(load_image(good_cases["animated_gif"][0]).image).astype(int)
    r, g, b = rgb[..., 0].mean(), rgb[..., 1].mean(), rgb[..., 2].mean()
    assert r > 200 and g < 50 and b < 50


def test_exif_rotation_turns_pixels(tmp_path):
    # A 2x1 strip: left red, right blue. Orientation 6 (rotate 90 clockwise) puts red on top.
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    rgb = np.asarray(load_image(path).image).astype(int)
    assert rgb.shape == (40, 20, 3)
    assert rgb[:15, :, 0].mean() > 200 and rgb[25:, :, 2].mean() > 200


def test_large_images_are_downscaled_but_report_full_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (3000, 1500), "white").save(path)
    im = load_image(path)
    assert im.original_size == (3000, 1500)
    assert max(im.image.size) == 1024


def test_pil_input_applies_orientation_and_mode():
    img = Image.new("LA", (30, 20))
    im = load_image(img)
    assert im.image.mode == "RGB" and im.original_size == (30, 20) and im.source == "<image>"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", SPECIAL_CASES)
def test_special_files_are_named_for_what_they_are_and_never_read(error_cases, case):
    """A FIFO with no writer would block a reader forever; /dev/zero would never end."""
    words = dict(ERROR_CASES)[case]
    for _ in range(2):  # twice: the first refusal leaves nothing open or half-read behind
        with pytest.raises(InputError) as info:
            load_image(error_cases[case])
        assert words in str(info.value) and "no such file" not in str(info.value)
        assert "empty file" not in str(info.value)


def test_check_path_says_the_same_as_load_image(error_cases):
    from kever.images import check_path

    for case, path in error_cases.items():
        if case in ("truncated", "non_image", "huge_header"):
            assert check_path(path) is None  # a regular file: only decoding can tell
            continue
        with pytest.raises(InputError) as early:
            check_path(path)
        with pytest.raises(InputError) as late:
            load_image(path)
        assert str(early.value) == str(late.value)


def test_tiny_or_thin_images_carry_a_note_that_reaches_the_judgment():
    """issue 16, defect 6: a 1x1 or 4000x2 image is judged, with a warning of how little it can show."""
    from kever.agent.fake_reasoner import FakeReasoner
    from kever.images import size_note

    for size in ((1, 1), (4000, 2), (8, 300)):
        note = load_image(Image.new("RGB", size)).notes[-1]
        assert f"{size[0]}x{size[1]} pixels" in note and note == size_note(size)
        assert note in FakeReasoner().explain(Image.new("RGB", size)).warnings
    assert size_note((64, 48)) is None and size_note((40, 30)) is None
