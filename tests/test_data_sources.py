"""--data forms beyond a task folder: a download of the authors' Hugging Face dataset repo
(data/proofwriter/ and data/arc/ inside), and hf:<repo id> read from the local Hugging Face cache."""

import json

import pytest

from mechprobe.tasks import arc

from mechprobe.tasks import proofwriter
from mechprobe.cli import UserError
from mechprobe.tasks.dataroot import AUTHORS_DATASET

PROOFWRITER_RECORD = {
    "context": "Bob is big. If someone is big then they are round.",
    "triples": {"triple1": "Bob is big."}, "rules": {"rule1": "If someone is big then they are round."},
    "question": "Bob is round.", "answer": True, "proof": "[(((triple1) -> rule1))]"}
ARC_RECORD = {
    "context": "", "triples": {"1": "Metals conduct.", "2": "Copper is a metal.", "3": "Which?",
                               "4": "Copper conducts."},
    "rules": {}, "options": ["A) yes", "B) no"], "question": "Which? A) yes B) no", "answer": "A",
    "proof": "(2 1) -> 4"}


def authors_repo(root):
    """The dataset repo's layout: data/proofwriter/ and data/arc/, each {train,dev,test}.json."""
    for task, record, depth in (("proofwriter", PROOFWRITER_RECORD, "1"), ("arc", ARC_RECORD, "1")):
        folder = root / "data" / task
        folder.mkdir(parents=True)
        for split in ("train", "dev", "test"):
            (folder / f"{split}.json").write_text(json.dumps({depth: [record]}))
    (root / "README.md").write_text("dataset card\n")
    return root


def check_loaded(root):
    (pw,) = proofwriter.load(str(root), "test")
    assert pw.statements == ["Bob is big.", "If someone is big then they are round."]
    assert pw.useful == [1, 1] and pw.depth == [0, 1] and pw.bucket == "m=2"
    (q,) = arc.load(str(root), "dev")
    assert q.statement_ids == ["1", "2", "3", "4"] and q.useful == [1, 1, 0, 1]
    assert q.bucket == "depth=1"


def test_the_downloaded_repo_root(tmp_path):
    check_loaded(authors_repo(tmp_path / "MechanisticProbe_ProofWriter_ARC"))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache (HF_HUB_CACHE), read by huggingface_hub at call time."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hf_spec_reads_the_local_cache(hub_cache):
    # what `hf download <id> --repo-type dataset` leaves: refs/main naming a snapshot folder
    repo = hub_cache / f"datasets--{AUTHORS_DATASET.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    authors_repo(repo / "snapshots" / commit)
    check_loaded(f"hf:{AUTHORS_DATASET}")


def test_hf_spec_not_cached_is_one_line(hub_cache, tmp_path):
    for load in (proofwriter.load, arc.load):
        with pytest.raises(UserError, match=f"--data hf:{AUTHORS_DATASET} is not in the local "
                           "Hugging Face cache: download it first with `hf download "
                           f"{AUTHORS_DATASET} --repo-type dataset`"):
            load(f"hf:{AUTHORS_DATASET}", "test")
