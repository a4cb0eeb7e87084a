"""Features kept in OUT/features: a re-probe with other probe settings skips the model, with the
numbers a fresh run gives; anything that changes the features recomputes them."""

import json
import time

import pytest
from conftest import refused, run_cli, run_ok

from mechprobe.probing import extraction


def results(out):
    return json.loads((out / "results.json").read_text())


def probe(model, out, *extra):
    return run_ok("probe", "--model", model, "--n-examples", "64", "--device", "cpu",
                  "--out", out, *extra)


def test_reprobe_reuses_features_and_equals_a_fresh_run(small_finetuned, tmp_path, monkeypatch):
    model, out = small_finetuned / "model", tmp_path / "out"
    probe(model, out)
    assert not results(out)["features_cached"] and len(list((out / "features").iterdir())) == 1
    calls = []
    real = extraction.features_of
    monkeypatch.setattr(extraction, "features_of", lambda *a, **k: calls.append(1) or real(*a, **k))
    started = time.perf_counter()
    printed = probe(model, out, "--layers", "1", "--neighbors", "4", "--folds", "3")
    assert "reusing the features" in printed and not calls and time.perf_counter() - started < 30
    cached = results(out)
    assert cached["features_cached"] and cached["layers"] == [1]
    probe(model, tmp_path / "fresh", "--layers", "1", "--neighbors", "4", "--folds", "3",
          "--feature-cache", "off")
    fresh = results(tmp_path / "fresh")
    for key in ("f1", "f1_random", "probing_score", "layerwise", "accuracy"):
        assert cached[key] == fresh[key], key
    # Another reading of attention (per head) is other features: computed, not reused.
    assert "reusing" not in probe(model, out, "--per-head") and len(list((out / "features").iterdir())) == 2


@pytest.mark.parametrize("mode", ["on", "strict"])
def test_a_damaged_cache_file(small_finetuned, tmp_path, mode):
    model, out = small_finetuned / "model", tmp_path / "out"
    probe(model, out)
    cached = next((out / "features").iterdir())
    cached.write_bytes(b"PK\x03\x04 damaged")
    if mode == "strict":
        refused("probe", "--model", model, "--n-examples", "64", "--device", "cpu", "--out", out,
                "--feature-cache", "strict", words=["damaged", str(cached)])
    else:
        code, printed, _ = run_cli("probe", "--model", model, "--n-examples", "64", "--device",
                                   "cpu", "--out", out)
        assert code == 0 and "damaged or foreign" in printed and "recomputing" in printed
        assert not results(out)["features_cached"]
