"""Shared command-line plumbing: common flags, one-line errors, readable tables."""

import argparse
import math
import os
import re
import signal
import sys

FORCE_HELP = ("write into an --out folder that holds files this tool did not write (files with our "
              "output names are replaced, nothing else is touched)")


class UserError(Exception):
    """A problem the user can fix; printed as one line, no traceback, exit status 2."""


class ConfigError(UserError, ValueError):
    """A config field out of range (RunConfig(folds=1), TextConfig(task="squad"), ...), raised
    when the config is built, before any model work; the message names the field."""


class NoCheckpointYet(KeyboardInterrupt):
    """An interruption of a resumable command (fine-tuning) before its first checkpoint was
    saved: there is nothing to resume from, and a rerun starts over."""


def require(condition, message):
    """Raise ConfigError(message) unless `condition`: the configs' validation."""
    if not condition:
        raise ConfigError(message)


def whole(value, minimum, maximum=None):
    """True for an int (not a bool) in [minimum, maximum]."""
    return (isinstance(value, int) and not isinstance(value, bool) and value >= minimum
            and (maximum is None or value <= maximum))


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr naming the fix, not usage plus error."""

    def error(self, message):
        self.exit(2, f"error: {message} (run with --help for the accepted values)\n")


def count(minimum, maximum=None):
    """argparse type: a whole number in [minimum, maximum]. 0 is a value, never "unset"."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum:,}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


def number(minimum=0.0, inclusive=False, maximum=None):
    """argparse type: a finite float above `minimum` (or equal with inclusive), below `maximum`."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        low_ok = value >= minimum if inclusive else value > minimum
        if not math.isfinite(value) or not low_ok or (maximum is not None and value >= maximum):
            bound = f"{'at least' if inclusive else 'above'} {minimum:g}"
            bound += f" and below {maximum:g}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    return parse


def path_text(text):
    """argparse type: a path that is not empty (an empty one would mean the working directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give a path")
    return text


def names(text):
    """argparse type: 'm=1,m=4' -> ['m=1', 'm=4']."""
    found = [name.strip() for name in text.split(",") if name.strip()]
    if not found:
        raise argparse.ArgumentTypeError("give names separated by commas, e.g. m=1,m=4")
    return found


SEED = count(0, 2**32 - 1)  # what numpy and torch accept as a seed
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def memory_limits(text):
    """argparse type: '0=20GiB,cpu=60GiB' -> {0: '20GiB', 'cpu': '60GiB'} (accelerate's max_memory)."""
    limits = {}
    for part in text.split(","):
        device, _, size = part.partition("=")
        device, size = device.strip(), size.strip()
        if not device or not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", size, re.I):
            raise argparse.ArgumentTypeError(f"'{part}' is not DEVICE=SIZE, e.g. 0=20GiB or cpu=60GiB")
        limits[int(device) if device.isdigit() else device] = size
    return limits


def add_common_args(parser, model_default="tiny", out_required=True):
    """The flags every entry point accepts: model, output folder, seed, device and placement."""
    parser.add_argument("--model", default=model_default,
                        help="'tiny' for the embedded small GPT-2, else a hub id or local directory")
    parser.add_argument("--out", required=out_required, type=path_text, help="output directory")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=count(1, 2**16), default=None)
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)
    parser.add_argument("--device-map", choices=DEVICE_MAPS,
                        help="spread a model larger than one device over the GPUs, CPU and disk "
                        "(transformers' device_map, through accelerate); default: one --device")
    parser.add_argument("--max-memory", type=memory_limits, metavar="DEV=SIZE,...",
                        help="with --device-map: memory per device, e.g. 0=20GiB,1=20GiB,cpu=60GiB")
    parser.add_argument("--offload-folder", metavar="DIR",
                        help="with --device-map: where layers that fit nowhere else are kept on disk")


def quiet_libraries():
    """Keep stdout readable: transformers' own progress bars and advice are noise in our tables."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _terminate(signum, frame):
    raise KeyboardInterrupt  # so that a `kill` cleans up like Ctrl-C does


def run(main, resumable=False):
    """Call main(); turn UserError, Ctrl-C and SIGTERM into one line on stderr and a non-zero exit.

    `resumable`: the command keeps a checkpoint when interrupted (fine-tuning); other commands
    remove what they had written, so the message differs.
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except UserError as err:
        message = str(err)
        # The library names config fields (TextConfig.icl); the command line, flags (--icl).
        message = re.sub(r"\b[A-Z]\w*Config\.(\w+)",
                         lambda m: "--" + m.group(1).replace("_", "-"), message)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        if isinstance(err, NoCheckpointYet):
            print("interrupted before the first checkpoint was saved: a rerun of the command "
                  "starts over from the beginning", file=sys.stderr)
        elif resumable:
            print("interrupted: rerun the same command to resume from the last checkpoint",
                  file=sys.stderr)
        else:
            print("interrupted: nothing was written; rerun the command to start again", file=sys.stderr)
        sys.exit(130)


def format_table(rows, columns):
    """Rows of dicts as a plain fixed-width table; floats with 4 decimals, None as '-'."""

    def cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)
