"""manifpt ssl-pretrain: a Barlow Twins backbone trained on the real images, for --space ssl."""
from __future__ import annotations

from pathlib import Path

NAME, HELP = "ssl-pretrain", "train a Barlow Twins backbone on the real images (for --space ssl)"
RESUME = True
LOCK_OUT = False  # --out is one file, written atomically; its training checkpoint is OUT.ckpt


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    p.add_argument("--data", default="gm-mini", help="GM folder (its real/ images), a folder of images, or gm-mini (default)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--arch", choices=("resnet18", "resnet50"), default="resnet18")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT.ckpt")
    p.add_argument("--out", type=Path, default=Path("runs") / "ssl.pth", help="backbone file (give it to --weights)")
    return p


def run(args) -> int:
    from ..data import list_images, load_images
    from ..experiments.steps import resolve_device
    from ..io import check_output_folder
    from ..ssl_pretrain import pretrain
    from ._common import check_positive, resolve_data

    check_positive(args, "size", "epochs", "batch_size")
    if args.out.is_dir():
        raise ValueError(f"--out {args.out} is a folder: give the file to write the backbone to (e.g. {args.out / 'ssl.pth'})")
    check_output_folder(args.out.parent, "--out's folder")
    resolve_data(args)
    folder = args.data / "real" if (args.data / "real").is_dir() else args.data
    images, _ = load_images(list_images(folder), args.size)
    losses = pretrain(images, args.out, arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                      device=resolve_device(args.device), checkpoint=Path(f"{args.out}.ckpt"), resume=args.resume)
    print(f"Barlow Twins loss {losses[0]:.1f} -> {losses[-1]:.1f} over {len(losses)} epochs on {len(images)} images; "
          f"backbone: {args.out} (use: --space ssl --weights {args.out})")
    return 0
