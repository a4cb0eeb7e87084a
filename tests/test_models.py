import pytest
import torch

from mechprobe.tasks import ksmallest
from mechprobe.cli import UserError
from mechprobe.models import load_pretrained, resolve_device, resolve_dtype
from mechprobe.tiny_models import build_tiny


def test_auto_device_and_dtype_on_this_machine():
    device = resolve_device("auto")
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        assert resolve_dtype("auto", device) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda_names_the_fix():
    with pytest.raises(UserError, match="use RunConfig.device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="use RunConfig.device cpu or auto"):
        resolve_device("cuda:1")


def test_unknown_device():
    with pytest.raises(UserError, match="unknown RunConfig.device"):
        resolve_device("gpu")


def test_tiny_model_reloads_offline_with_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = build_tiny(range(30))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    retok = AutoTokenizer.from_pretrained(tmp_path)
    ids = retok("3 14 29", add_special_tokens=False)["input_ids"]
    assert ids == tokenizer("3 14 29", add_special_tokens=False)["input_ids"] and len(ids) == 3
    assert retok.decode(ids) == "3 14 29"
    x = torch.tensor([ids])
    assert torch.equal(model.eval()(x).logits, reloaded(x).logits)


def test_tiny_number_set_is_its_vocabulary():
    _, tokenizer = build_tiny(range(50))
    numbers = ksmallest.number_set(tokenizer, 50)
    assert numbers.numbers.tolist() == list(range(50))
    with pytest.raises(UserError, match="use --num-set 50 or less"):
        ksmallest.number_set(tokenizer, 51)  # 50 would be <unk>, which must not count


def test_bpe_number_set_follows_the_tokenizer(bpe_gpt2_dir):
    model, tokenizer = load_pretrained(bpe_gpt2_dir)
    numbers = ksmallest.number_set(tokenizer, 40)
    values = numbers.numbers.tolist()
    assert values == sorted(values) and len(values) == 40
    skipped = sorted(set(range(values[-1])) - set(values))
    assert skipped, "the BPE fixture should leave some numbers multi-token"
    for n in values:
        assert len(tokenizer(f"{n} {n}", add_special_tokens=False)["input_ids"]) == 2
    for n in skipped:
        assert len(tokenizer(f"{n} {n}", add_special_tokens=False)["input_ids"]) != 2
    # The vectorised encoding equals what the tokenizer itself produces from the text.
    task = ksmallest.Spec(k=1, list_len=12, num_set=40)
    indices = ksmallest.generate(task, 20, seed=0)
    encoded = numbers.encode(indices)
    for row, ids in zip(indices, encoded):
        assert tokenizer(numbers.text(row), add_special_tokens=False)["input_ids"] == ids.tolist()


def test_load_errors_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_pretrained(str(tmp_path / "nope" / "model"))
    with pytest.raises(UserError, match="has no config.json"):
        load_pretrained(str(tmp_path))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        load_pretrained(str(tmp_path / "file.txt"))
    with pytest.raises(UserError, match="Hugging Face cache"):
        load_pretrained("no-such-org/no-such-model")
