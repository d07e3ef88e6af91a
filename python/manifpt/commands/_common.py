"""Arguments and parsing that several commands share (data, output, device, training, lists)."""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

from .. import spaces


def add_data(p: argparse.ArgumentParser, space: bool = True, default: str | None = "gm-mini") -> None:
    p.add_argument("--data", default=default, help="GM folder ROOT/real/** + ROOT/<model>/**, or gm-mini (the embedded "
                   "benchmark" + (", the default)" if default else ")"))
    if space:
        p.add_argument("--space", choices=spaces.names(), default="rgb", help=spaces.help_text())
    p.add_argument("--size", type=int, default=32, help="images are brought to SIZE x SIZE (default 32)")
    p.add_argument("--per-model", type=int, default=None, metavar="N",
                   help="at most N generated images per model (the same seeded subset on every run): a quick look")
    p.add_argument("--weights", default=None, help="local weights file for sl/ssl (never downloaded)")
    p.add_argument("--neighbour-space", choices=("rgb",), default=None,
                   help="search the nearest real in RGB, take the difference in --space (the authors' code)")
    add_skip_bad(p)


def add_skip_bad(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable images (listed) instead of stopping")


def add_out(p: argparse.ArgumentParser, name: str, device: bool = True) -> None:
    if device:
        p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--out", type=Path, default=Path("runs") / name, help=f"folder for results.json and figures (runs/{name})")


def add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", choices=("small", "resnet50"), default="small", help="attributor for image artifacts")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)


def add_memory_budget(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--memory-budget", default=None, metavar="SIZE", help=f"bytes held at once, e.g. 2GB or 512MB: {what}")


def check_positive(args, *names: str) -> None:
    names = (*names, "per_model")
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def resolve_data(args) -> None:
    """args.data ('gm-mini' or a folder) as the folder it names."""
    if getattr(args, "data", None) is not None:
        from ..data import gm_mini

        args.data = gm_mini.resolve(args.data)


def data_kwargs(args, device: str) -> dict:
    return dict(size=args.size, weights=args.weights, neighbour_space=args.neighbour_space, skip_bad=args.skip_bad,
                device=device, per_model=args.per_model)


def parse_spaces(text: str, allow_none: bool = False) -> list[str]:
    if allow_none and text == "none":
        return []
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in spaces.names()]
    if bad or not names:
        raise ValueError(f"--spaces: unknown space(s) {bad or names}: choose from {', '.join(spaces.names())}")
    return names


def parse_baselines(text: str) -> list[str]:
    from ..baselines import BASELINES

    if text in ("none", "all"):
        return list(BASELINES) if text == "all" else []
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise ValueError(f"--baselines: unknown baseline(s) {unknown}: choose from {', '.join(BASELINES)}")
    return names


def parse_baseline_args(items: list[str], names: list[str]) -> dict[str, dict]:
    """['yu19.lr=1e-4', ...] -> {'yu19': {'lr': 0.0001}}; values are Python literals, else strings."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, param = key.strip().partition(".")
        if not sep or not dot or not param:
            raise ValueError(f"--baseline-arg must be NAME.KEY=VALUE (e.g. yu19.lr=1e-4), got {item!r}")
        if name not in names:
            raise ValueError(f"--baseline-arg {item!r}: {name!r} is not among --baselines ({', '.join(names) or 'none'})")
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            value = value.strip()
        out.setdefault(name, {})[param] = value
    return out


def parse_where(text: str | None) -> dict | None:
    if not text:
        return None
    pairs = [w.split("=", 1) for w in text.split(",") if w.strip()]
    if any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise ValueError(f"--where must be COLUMN=VALUE[,COLUMN=VALUE], got {text!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def check_keep(keep: float) -> None:
    if not 0 < keep <= 1:
        raise ValueError(f"--keep must be in (0, 1], got {keep}")


def write_tables(out: Path, tables: list[str], result: dict) -> None:
    """results.md with the printed tables, and the closing line that says what was written."""
    from ..io import atomic_write_text

    if tables:
        atomic_write_text(out / "results.md", "\n\n".join(tables) + "\n")
    print(f"\nwrote {out}/results.json" + (", results.md" if tables else "")
          + "".join(f", {out}/{f}" for f in result.get("figures", [])))
