"""Atomic result files with provenance."""

import json
import os

import pandas as pd
import pytest

from unrolling_lib import storage
from unrolling_lib.book import results


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "table.json"
    storage.atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        storage.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is intact
    assert [p.name for p in target.parent.iterdir()] == ["table.json"]  # no temporary file left


def test_save_table_goes_to_the_run_folder(tmp_path, monkeypatch):
    df = pd.DataFrame({"gamma": [0.0, 5.0], "e": [1.5, 0.5]})
    monkeypatch.delenv(results.RUN_DIR_ENV, raising=False)
    assert results.save_table(df, "errors") is None  # no run folder: nothing written
    monkeypatch.setenv(results.RUN_DIR_ENV, str(tmp_path))
    path = results.save_table(df, "errors", profile="quick")
    pd.testing.assert_frame_equal(storage.read_table(path), df)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["rows"] == 2 and meta["profile"] == "quick" and "torch" in meta


def test_a_claimed_folder_refuses_other_parameters(tmp_path):
    storage.claim_folder(tmp_path, {"lr": 0.01, "seed": 0}, name="checkpoint_dir")
    storage.claim_folder(tmp_path, {"lr": 0.01, "seed": 0}, name="checkpoint_dir")  # the same: a resume
    with pytest.raises(ValueError, match=r"^checkpoint_dir='.*' holds results of other parameters \(they differ "
                                         r"in lr\); use another folder"):
        storage.claim_folder(tmp_path, {"lr": 0.02, "seed": 0}, name="checkpoint_dir")


def test_result_files_get_the_usual_permissions(tmp_path):
    path = storage.atomic_write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_provenance_names_the_commit_and_whether_the_checkout_had_changes(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    clean = storage.provenance(repository=tmp_path)
    assert clean["git_commit"] == head and clean["git_dirty"] is False
    (tmp_path / "a.txt").write_text("2")
    assert storage.provenance(repository=tmp_path)["git_dirty"] is True
    outside = storage.provenance(repository=tmp_path / "nowhere")
    assert outside["git_commit"] is None and outside["git_dirty"] is None
