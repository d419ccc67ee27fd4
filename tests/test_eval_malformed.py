"""Malformed dataset files (issue 16, defects 3 and 4): every loader answers a broken file with
an InputError naming the file, the line and what was expected, never an internal error; vote
rows that are all zero, negative or NaN are refused with their line number.

Each case is also run through ``kever eval run`` once, to see the one-line error and exit 2.
"""

from __future__ import annotations

import json

import pytest
from eval_helpers import make_class_folders, make_csv, make_emoset, make_emotion6, make_flickr, make_twitter

from kever.errors import InputError
from kever.evals.datasets import load_dataset

BINARY = bytes(range(256)) * 4


def flickr(tmp_path, body: str | bytes):
    root = make_flickr(tmp_path, [[1, 0, 0, 0, 0, 0, 0, 0]])
    gt = root / "ground_truth.txt"
    gt.write_bytes(body if isinstance(body, bytes) else body.encode())
    return root, gt


HEADER = "images-name Amusement Awe Contentment Excitement Anger Disgust Fear Sadness\n"


@pytest.mark.parametrize("body, line, expected", [
    ("onlyname\n1.jpg 1 0 0 0 0 0 0 0\n", 1, "a name and 8 vote counts"),                  # one-field first line
    (HEADER + "1.jpg 1 0 x 0 0 0 0 0\n", 2, "a number"),                                   # non-numeric vote
    (HEADER + "1.jpg 1 0 0 0 0 0 0\n", 2, "a name and 8 vote counts"),                     # short row
    (BINARY, None, "UTF-8 text"),                                                          # a binary file
])
def test_flickr_malformed_file_names_file_line_and_expectation(tmp_path, body, line, expected):
    root, gt = flickr(tmp_path, body)
    with pytest.raises(InputError) as e:
        load_dataset("flickr_ldl", root)
    msg = str(e.value)
    assert str(gt) in msg and expected in msg
    if line is not None:
        assert f"line {line}" in msg


@pytest.mark.parametrize("votes, why", [
    ("0 0 0 0 0 0 0 0", "all zero"),
    ("1 0 0 -2 0 0 0 0", "negative"),
    ("1 0 nan 0 0 0 0 0", "not a finite number"),
    ("1 0 inf 0 0 0 0 0", "not a finite number"),
])
def test_flickr_vote_rows_all_zero_negative_or_nan_are_refused_with_line(tmp_path, votes, why):
    root, gt = flickr(tmp_path, HEADER + "1.jpg 1 0 0 0 0 0 0 0\n" + f"2.jpg {votes}\n")
    with pytest.raises(InputError) as e:
        load_dataset("flickr_ldl", root)
    assert f"{gt} line 3" in str(e.value) and why in str(e.value)


def test_emotion6_malformed_rows(tmp_path):
    root = make_emotion6(tmp_path)
    gt = root / "ground_truth.txt"
    lines = gt.read_text().splitlines()
    for bad, why in [("joy/2.jpg\t7.5\tx\t0\t0\t0\t0.7\t0\t0.2\t0.1", "arousal"),
                     ("joy/2.jpg\t7.5\t5\t0\t0\t0\t0\t0\t0\t0", "all zero"),
                     ("joy/2.jpg\t7.5\t5\t0\t0\tnan\t0.7\t0\t0.2\t0.1", "not a finite number"),
                     ("joy/2.jpg\t7.5\t5\t0\t0\t-0.1\t0.7\t0\t0.2\t0.1", "negative"),
                     ("joy/2.jpg\t7.5\t5", "valence, arousal and 7 probabilities")]:
        gt.write_text("\n".join(lines[:2] + [bad] + lines[3:]) + "\n")
        with pytest.raises(InputError) as e:
            load_dataset("emotion6", root)
        assert f"{gt} line 3" in str(e.value) and why in str(e.value), str(e.value)
    gt.write_bytes(BINARY)
    with pytest.raises(InputError, match="UTF-8 text"):
        load_dataset("emotion6", root)


def test_emoset_malformed_lists_and_annotations(tmp_path):
    root = make_emoset(tmp_path)
    lst = root / "test.json"
    lst.write_text("[[\"awe\", \"image/awe/awe_00006.jpg\"")  # truncated JSON
    with pytest.raises(InputError) as e:
        load_dataset("emoset", root)
    assert str(lst) in str(e.value) and "line 1" in str(e.value) and "JSON" in str(e.value)
    lst.write_text(json.dumps([["awe", "image/awe/awe_00006.jpg"], "oops"]))
    with pytest.raises(InputError, match=r"entry 2: expected \[emotion, image_path"):
        load_dataset("emoset", root)
    lst.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(InputError, match="a JSON list"):
        load_dataset("emoset", root)
    lst.write_text(json.dumps([["awe", "image/awe/awe_00006.jpg", "annotation/awe/awe_00006.json"]]))
    (root / "annotation/awe/awe_00006.json").write_bytes(BINARY)
    with pytest.raises(InputError, match="awe_00006.json"):
        load_dataset("emoset", root)


def test_class_folder_loaders_missing_split_folder(tmp_path):
    root = make_class_folders(tmp_path, {"awe": 1, "fear": 1})
    for name in ("fi", "artphoto", "folder"):
        with pytest.raises(InputError, match="not found"):
            load_dataset(name, root, split="nosuch")


def test_twitter_binary_list(tmp_path):
    root = make_twitter(tmp_path, [("a.jpg", 1), ("b.jpg", 0)])
    (root / "5agree.txt").write_bytes(BINARY)
    with pytest.raises(InputError, match="UTF-8 text"):
        load_dataset("twitter", root, split="5agree")


def test_csv_malformed_values_and_rows(tmp_path):
    root = make_csv(tmp_path)
    man = root / "manifest.csv"
    head = "id,image,valence,arousal,p_joy,p_calm,p_dread\n"
    cases = [(head + "x1,a.jpg,0.5,0.2,0.7,0.3,0.0\nx2,sub/b.jpg,high,0.9,0.0,0.5,0.5\n", "line 3", "valence"),
             (head + "x1,a.jpg,0.5,0.2,0.7,0.3,0.0\nx2,sub/b.jpg,0.1,0.9,0,0,0\n", "line 3", "all zero"),
             (head + "x1,a.jpg,0.5,0.2,0.7,0.3,0.0\nx2,sub/b.jpg,0.1,0.9,0,-1,2\n", "line 3", "negative"),
             (head + "x1,a.jpg,0.5,0.2,0.7,0.3,0.0\nx2\n", "line 3", "image"),
             (head + "x1,a.jpg,0.5,0.2,0.7,0.3,0.0\nx2,sub/b.jpg,0.1,0.9,0,1,0,extra\n", "line 3", "7 columns")]
    for body, line, why in cases:
        man.write_text(body)
        with pytest.raises(InputError) as e:
            load_dataset("csv", root)
        assert str(man) in str(e.value) and line in str(e.value) and why in str(e.value), str(e.value)
    man.write_bytes(BINARY)
    with pytest.raises(InputError, match="UTF-8 text"):
        load_dataset("csv", root)


def test_eval_run_on_malformed_file_is_one_line_not_internal_error(tmp_path, capsys):
    from kever.cli import main

    root, gt = flickr(tmp_path, "onlyname\n")
    with pytest.raises(SystemExit) as e:
        main(["eval", "run", "--dataset", "flickr_ldl", "--root", str(root), "--system", "majority",
              "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, err
    assert "internal error" not in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and str(gt) in err and "line 1" in err
