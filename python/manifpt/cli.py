"""The manifpt command line: the table of commands (commands/, one module each) and the one place that
turns known errors into a one-line message and an exit code.

    manifpt demo         the paper's three studies on the embedded GM-Mini (quick preset; --full)
    manifpt bench        exactness + speed of the projection op vs FAISS and torch
    manifpt project      nearest real, distance and artifact of every fake (.npy or image folders; torchrun)
    manifpt artifacts    artifacts of a GM folder + FD ratio + figures
    manifpt fit          train an attributor on artifacts (then predict / evaluate)
    manifpt predict      attribute images (results.json + predictions.csv)
    manifpt evaluate     accuracy + confusion matrix on a GM folder
    manifpt experiment   model-type (Table 1), training-data (Table 5), layer-type (Table 6), robustness, open-set
    manifpt ssl-pretrain Barlow Twins on your own reals (for --space ssl)

Exit codes: 0 done; 2 bad input or a refused run (one line on stderr, nothing half-written); 130 / 143
interrupted by SIGINT / SIGTERM (with the command that continues the run, where it can).
"""
from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys

from . import __version__
from .commands import COMMANDS


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that `finally` blocks and atomic writes clean up."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _known_error(e: BaseException) -> bool:
    # RuntimeErrors of the op's own checks (NaN, overflow, ...) say "manifpt" and are the user's input, not a bug.
    return isinstance(e, (FileNotFoundError, ValueError, TypeError, NotADirectoryError, PermissionError)) or (
        isinstance(e, RuntimeError) and "manifpt" in str(e).split("\n", 1)[0])


def _resume_hint(module, args, argv: list[str]) -> str:
    resumable = module.resumable(args) if hasattr(module, "resumable") else module.RESUME
    if not resumable:
        return "run it again to start over (nothing half-written was kept)"
    again = ["manifpt", *argv] + ([] if "--resume" in argv else ["--resume"])
    return f"to continue where it stopped: {shlex.join(again)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manifpt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"manifpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    module = COMMANDS[args.command]
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        with _held_out(module, args):
            return module.run(args)
    except KeyboardInterrupt:
        print(f"\ninterrupted (SIGINT): {_resume_hint(module, args, argv)}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"\nterminated (SIGTERM): {_resume_hint(module, args, argv)}", file=sys.stderr)
        return 143
    except Exception as e:  # noqa: BLE001 - known errors become one line; anything else is a bug: traceback
        if not _known_error(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _held_out(module, args):
    """--out, checked (a writable folder) and held for the run before any work, for commands that write a folder."""
    if not getattr(module, "LOCK_OUT", False) or getattr(args, "out", None) is None:
        return contextlib.nullcontext()
    from .io import OutputFolder

    return OutputFolder(args.out)


if __name__ == "__main__":
    sys.exit(main())
