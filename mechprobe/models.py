"""Loading models: devices, dtypes, hub ids or local folders checked, the model placed, and its
randomly initialised twin (the probing score's baseline)."""

import os
import pickle
import re
import sys
import warnings

import torch

from mechprobe import seeds
from mechprobe.cli import UserError



def resolve_device(spec):
    """'auto' -> CUDA when present, else CPU; an explicit CUDA request must be satisfiable."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"unknown RunConfig.device '{spec}': use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"RunConfig.device {spec} asked for CUDA but torch sees no CUDA "
                            "device (no GPU or a CPU-only torch build): use RunConfig.device cpu "
                            "or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"RunConfig.device {spec}: only {torch.cuda.device_count()} CUDA device(s); "
                            "use an index below that")
    elif device.type != "cpu":
        raise UserError(f"unsupported RunConfig.device '{spec}': use auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(spec, device):
    """'auto' -> bfloat16 on a CUDA device that supports it, else float32."""
    if spec == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[spec]
    if dtype == torch.float16 and device.type == "cpu":
        raise UserError("--dtype float16 is not supported on the CPU: use float32 or bfloat16")
    return dtype


def looks_like_path(name):
    """Hub ids are 'name' or 'org/name'; a name with more slashes, or whose first part is a local
    folder (runs/nope), is meant as a directory."""
    return (name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/")
            or ("/" in name and os.path.isdir(name.split("/")[0])))


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def check_model_source(name):
    """Fail fast, before transformers tries a hub, on a name that cannot be loaded."""
    if os.path.isdir(name):
        if not os.access(name, os.R_OK | os.X_OK):
            raise UserError(f"model directory '{name}' is not readable: check its permissions")
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise UserError(f"model directory '{name}' has no config.json: pass a directory written "
                            "by save_pretrained (e.g. OUT/model from finetune_gpt2.py)")
        weights = [w for w in WEIGHT_FILES if os.path.exists(os.path.join(name, w))]
        if not weights:
            raise UserError(f"model directory '{name}' has no weights ({' or '.join(WEIGHT_FILES[::2])}): "
                            "the save was incomplete; save or convert the model again")
        for path in [os.path.join(name, "config.json"), *(os.path.join(name, w) for w in weights)]:
            try:
                open(path, "rb").close()
            except OSError as err:
                raise UserError(f"cannot read {path} ({err.strerror}): check its permissions") from None
    elif os.path.exists(name):
        raise UserError(f"model path '{name}' is a file, not a model directory: pass the directory "
                        "that holds config.json (e.g. OUT/model from finetune_gpt2.py)")
    elif looks_like_path(name):
        raise UserError(f"model path '{name}' does not exist: pass a directory written by "
                        "finetune_gpt2.py (OUT/model) or a hub id")
    else:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            raise UserError(f"model '{name}' is neither a local directory nor in the Hugging Face "
                            "cache, and HF_HUB_OFFLINE is set: pass a local directory, or download "
                            f"it first with `hf download {name}`")
        check_on_hub(name)


def check_on_hub(name, timeout=10):
    """One short request before transformers' download, whose retries take a minute and print
    a page when there is no network or no such model."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=timeout)
    except GatedRepoError:
        return   # transformers says how to log in
    except RepositoryNotFoundError:
        raise UserError(f"model '{name}' is not a local directory, not in the Hugging Face cache, "
                        "and not on the hub: check the name") from None
    except Exception as err:   # no network, a proxy, a timeout, ...
        raise UserError(f"model '{name}' is not a local directory nor in the Hugging Face cache, "
                        f"and the hub cannot be reached ({type(err).__name__}): download it where "
                        f"there is network (`hf download {name}`), or pass a local "
                        "directory") from None


def input_device(model):
    """Where a batch goes in: the input embeddings' device. With a device map accelerate's hooks
    move what each layer needs, and offloaded weights sit on the meta device until used."""
    device = model.get_input_embeddings().weight.device
    return torch.device("cpu") if device.type == "meta" else device


def check_causal(model):
    """Refuse a model whose attention is not causal (BERT loads as BertLMHeadModel, then attends
    to later tokens): the probe reads attention from the question to earlier statements only.
    Tested directly: changing the last token must not change the first position's output."""
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.tensor([[1 % vocab, 2 % vocab, 3 % vocab], [1 % vocab, 2 % vocab, 4 % vocab]],
                       device=input_device(model))
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits[:, 0].float()
    except Exception as err:  # a config that loads but cannot run (e.g. a negative layer count)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{type(model).__name__} fails on a 3-token input ({type(err).__name__}: "
                        f"{first[:150]}): its config.json or weights are damaged; save or "
                        "download the model again") from None
    if not torch.allclose(logits[0], logits[1], atol=1e-4, rtol=1e-3):
        raise UserError(f"{type(model).__name__} is not a causal language model (its first position "
                        "sees later tokens): pass a decoder-only model (GPT-2, LLaMA, ...)")


def modules_of(names, shown=3):
    """'a.b.weight', 'a.b.bias', 'a.c.weight' -> 'a.b, a.c': the modules a list of tensors sits in."""
    modules = list(dict.fromkeys(name.rpartition(".")[0] or name for name in sorted(names)))
    return ", ".join(modules[:shown]) + (f" and {len(modules) - shown} more" if len(modules) > shown
                                         else "")


def check_whole(name, model, loading, allow_partial=False):
    """Refuse weights that do not cover the model exactly: transformers fills a missing tensor
    with a random init and only logs it (a log our quiet setting hides), so a partial or foreign
    checkpoint would be probed as if trained. `allow_partial` loads it anyway, said loudly."""
    missing, unexpected = sorted(loading["missing_keys"]), sorted(loading["unexpected_keys"])
    if not missing and not unexpected:
        return
    total = sum(1 for _ in model.state_dict())
    problems = []
    if missing:
        problems.append(f"lack {len(missing)} of the model's {total} tensors (in {modules_of(missing)})")
    if unexpected:
        problems.append(f"hold {len(unexpected)} tensors the model does not have (in "
                        f"{modules_of(unexpected)})")
    what = f"the weights of '{name}' {' and '.join(problems)}"
    if allow_partial:
        print(f"WARNING: {what}; the missing ones are RANDOM (allow_partial)", file=sys.stderr)
        return
    raise UserError(f"{what}: weights and config.json do not match (a damaged or partial save), and "
                    "a loaded model would be partly random: save or convert the model again")


def bad_model(name, err):
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return UserError(f"could not load model '{name}' ({type(err).__name__}: {first_line[:200]}): "
                     "pass an intact local directory or a hub id that is already in the Hugging "
                     "Face cache (no downloads offline)")


def load_pretrained(name, dtype=torch.float32, attn_implementation=None, placement=None,
                    allow_partial=False):
    """A hub id or local directory through the Auto classes; errors say what to do instead.
    `placement`: from_pretrained's device_map, max_memory and offload_folder, for a model larger
    than one device (accelerate places each layer; None: the caller moves the model). Weights
    must cover the model exactly (check_whole; `allow_partial` loads them anyway, with a warning)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_source(name)
    kwargs = {"dtype": dtype, **{k: v for k, v in (placement or {}).items() if v is not None}}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        with warnings.catch_warnings():  # torch warns on every foreign pickle protocol
            warnings.simplefilter("ignore")
            tokenizer = AutoTokenizer.from_pretrained(name)
            model, loading = AutoModelForCausalLM.from_pretrained(name, output_loading_info=True,
                                                                  **kwargs)
    except pickle.UnpicklingError:
        raise UserError(f"could not load model '{name}': its pytorch_model.bin holds objects other "
                        "than tensors, and loading it could run code, so it was refused: use a "
                        "safetensors copy of the model from a source you trust") from None
    except ValueError as err:
        if "Unrecognized configuration class" not in str(err):
            raise bad_model(name, err) from None
        kind = re.search(r"<class '([\w.]+)'>", str(err))
        kind = kind.group(1).rsplit(".", 1)[-1] if kind else "non-causal"
        raise UserError(f"model '{name}' is a {kind} model, which is not a causal "
                        "language model: pass a decoder-only model (GPT-2, LLaMA, ...)") from None
    except Exception as err:  # OSError, safetensors' own errors, ...
        raise bad_model(name, err) from None
    check_whole(name, model, loading, allow_partial)
    if tokenizer.pad_token is None:  # GPT-2 and LLaMA ship without one; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    check_causal(model)
    return model, tokenizer


def position_limit(model):
    """The most positions the model was trained for, or None where its config names none."""
    config = model.config.get_text_config()
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def check_fits(model, lengths, fix="use a shorter --list-len", names=None, skip=False):
    """Prompts of `lengths` tokens (one int, or one per prompt) must fit the model's positions:
    past them learned position embeddings fail with an IndexError, and rotary models run on
    positions they never saw. Returns the indices of the prompts that fit; one over the limit is a
    UserError naming the longest prompt (`names`), the limit and `fix`, unless `skip`, which
    leaves the long ones out (the caller counts them)."""
    lengths = [lengths] if isinstance(lengths, int) else list(lengths)
    limit = position_limit(model)
    fits = [i for i, n in enumerate(lengths) if not limit or n <= limit]
    if len(fits) < len(lengths) and not skip:
        longest = max(range(len(lengths)), key=lengths.__getitem__)
        which = "prompts" if names is None else (
            f"{len(lengths) - len(fits)} of {len(lengths)} prompts, the longest {names[longest]},")
        raise UserError(f"{which} of {lengths[longest]} tokens exceed the model's {limit} "
                        f"positions: {fix}")
    return fits


def check_model_name(name):
    """'tiny' names a model to build, not one to probe."""
    if name == "tiny":
        raise UserError("--model must name a trained model: fine-tune one first "
                        "(python finetune_gpt2.py --task min01 --out runs/tiny-min01) and pass "
                        "--model runs/tiny-min01/model, or pass a hub id / local directory")


def load_model(name, device="auto", dtype="auto", placement=None):
    """The probed model and its tokenizer (a hub id or local folder), in eval mode; where inputs
    go is models.input_device(model). `placement` (RunConfig.placement()) spreads a large model
    over several devices."""
    from mechprobe.parallel import processes

    check_model_name(name)
    state = processes()
    # Several processes: each on its own device (accelerate knows which), unless one was named.
    device = state.device if state is not None and device == "auto" else resolve_device(device)
    model, tokenizer = load_pretrained(name, dtype=resolve_dtype(dtype, device), placement=placement)
    if not placement:
        model = model.to(device)
    return model.eval(), tokenizer


def twin_seed(seed):
    """The random twin's initialisation seed: derived from --seed but not equal to it, so that a
    model which is itself a random init from that seed (make_data.py llama) is not its own twin."""
    return int(seeds.rng(seed, seeds.TWIN).integers(2**31))


def random_init(model, seed):
    """`model`'s architecture and dtype with fresh weights drawn from `seed` (on the CPU)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)


def random_twin(model, seed):
    """The same architecture, randomly initialised (the probing score's baseline), placed where
    the model is."""
    twin = random_init(model, twin_seed(seed))
    layout = getattr(model, "hf_device_map", None)
    if layout and len(set(layout.values())) > 1:
        from accelerate import dispatch_model

        # The twin's weights are fresh: what the model keeps on disk, the twin keeps in memory.
        layout = {name: "cpu" if where == "disk" else where for name, where in layout.items()}
        return dispatch_model(twin, device_map=layout).eval()
    return twin.to(input_device(model)).eval()


def padding_id(tokenizer):
    """The id padded positions get: the tokenizer's pad token, or 0 where it has none (GPT-2).
    Padded positions are masked out, so any id in the vocabulary does."""
    return tokenizer.pad_token_id or 0
