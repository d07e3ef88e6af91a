"""`manifpt artifacts` on disk: the artifact store (artifact_store.py) of a GM folder, built chunk by
chunk within a memory budget, or adopted from the output folder of `manifpt project`.

From a GM folder (`build_store`), with a budget of B bytes:
1. the reals are decoded and embedded in chunks into OUT/cache/reals-<space>-<key>.npy (and their RGB
   into reals-rgb-<key>.npy when the space is not rgb), resumable chunk by chunk;
2. the fakes go through in chunks: decoded, embedded, projected with manifpt_ext.project_stream over the
   reals' file (half of B), and their rows written to the store. The result equals
   RealManifold.artifacts on the whole folder bit for bit (tests/test_scale_fit.py).

From `manifpt project`'s folder (`adopt_project`), also one run under torchrun: its artifacts.npy,
index.npy and distance.npy are hard-linked into OUT (copied in chunks across file systems), the labels
come from the fakes' model folders (a GM folder given as --fakes) or from a labels .npy, and a row is
`identical` when its distance is 0: its artifact is exactly zero, so it carries no fingerprint.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

import manifpt_ext

from .artifact_store import ARRAYS, FORMAT, ChunkedWriter, RowReader, chunk_rows
from .data import ImageFolderGM, list_images, load_images
from .io import atomic_write_json, load_npy
from .spaces import get_embedder


def _chunked_npy(path: Path, shape, dtype, chunk: int, key: str, fill, progress: str | None = None) -> Path:
    """path (.npy of `shape`) filled by fill(lo, hi) -> rows, chunk by chunk; a finished file is reused,
    a killed run continues with the chunks it had not recorded."""
    if path.is_file():
        return path
    partial, state_file = path.with_suffix(".partial.npy"), path.with_suffix(".progress.json")
    state = json.loads(state_file.read_text()) if state_file.is_file() and partial.is_file() else None
    if state is None or state.get("key") != key or state.get("chunk") != chunk:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=tuple(shape)).flush()
        state = {"key": key, "chunk": chunk, "done": []}
    mm = np.load(partial, mmap_mode="r+")
    todo = [k for k in range(-(-shape[0] // chunk)) if k not in set(state["done"])]
    bar = _bar(len(todo), progress)
    for k in todo:
        lo, hi = k * chunk, min(shape[0], (k + 1) * chunk)
        mm[lo:hi] = fill(lo, hi)
        mm.flush()
        state["done"].append(k)
        atomic_write_json(state_file, state)
        bar.update(1) if bar else None
    bar.close() if bar else None
    del mm
    os.replace(partial, path)
    state_file.unlink()
    return path


def _bar(total, desc):
    if not desc:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="chunk")


def build_store(data, space: str, out: Path, *, memory_budget: int, size=32, weights=None, neighbour_space=None,
                device="cpu", progress=True, per_model=None) -> dict:
    """The store of every generated image of `data`, never holding more than about `memory_budget` bytes
    of images, embeddings and reals at once (plus the model of the space)."""
    out = Path(out)
    ds = ImageFolderGM(data, size=size, per_model=per_model)
    embedder = get_embedder(space, weights=weights, device=device)
    probe, _ = load_images(ds.real_files[:1], size)
    emb_shape = tuple(embedder.embed(probe).shape[1:])
    rgb_shape = tuple(probe.shape[1:])
    row = 4 * (int(np.prod(rgb_shape)) * 2 + int(np.prod(emb_shape)) * 3)  # rgb + nearest rgb, emb + artifact + nearest
    half = max(1, memory_budget // 2)
    chunk = chunk_rows(row, half, copies=1)
    h = hashlib.sha256(f"size={size}|{embedder.key()}".encode())
    for f in ds.real_files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    key = h.hexdigest()[:24]
    n = len(ds.real_files)
    cache = out / "cache"
    real_chunk = chunk_rows(4 * (int(np.prod(rgb_shape)) + int(np.prod(emb_shape))), half, copies=1)

    def reals_rgb(lo, hi):
        return load_images(ds.real_files[lo:hi], size)[0].numpy()

    rgb_path = _chunked_npy(cache / f"reals-rgb-{key}.npy", (n, *rgb_shape), np.float32, real_chunk, key, reals_rgb,
                            "reals (rgb)" if progress else None)
    emb_path = rgb_path
    if space != "rgb":
        rgb_reader = RowReader(rgb_path, (n, *rgb_shape), np.float32, np.load(rgb_path, mmap_mode="r").offset)

        def reals_emb(lo, hi):
            return embedder.embed(torch.from_numpy(rgb_reader.read(np.arange(lo, hi)))).numpy()

        emb_path = _chunked_npy(cache / f"reals-{space}-{key}.npy", (n, *emb_shape), np.float32, real_chunk, key,
                                reals_emb, f"reals ({space})" if progress else None)
    readers = {p: RowReader(p, (n, *s), np.float32, np.load(p, mmap_mode="r").offset)
               for p, s in ((rgb_path, rgb_shape), (emb_path, emb_shape))}
    search = rgb_path if neighbour_space == "rgb" else emb_path
    settings = {"key": key, "files": len(ds.files), "space": space, "neighbour_space": neighbour_space, "size": size,
                "per_model": per_model}
    w = ChunkedWriter(out, len(ds.files), emb_shape, chunk, settings)
    labels = torch.tensor(ds.labels)
    bar = _bar(len(w.todo()), f"artifacts ({space})" if progress else None)
    for k in w.todo():
        lo, hi = w.bounds(k)
        fakes, _ = load_images(ds.files[lo:hi], size)
        emb = embedder.embed(fakes)
        p = manifpt_ext.project_stream(fakes if search == rgb_path else emb, search, memory_budget=half)
        idx = p.index.numpy()
        art = p.artifact if search == emb_path else emb - torch.from_numpy(readers[emb_path].read(idx))
        identical = (fakes == torch.from_numpy(readers[rgb_path].read(idx))).flatten(1).all(dim=1)
        w.write(k, {"artifacts": art.numpy(), "labels": labels[lo:hi].numpy(), "index": idx,
                    "distance": p.distance.numpy(), "identical": identical.numpy()})
        bar.update(1) if bar else None
    bar.close() if bar else None
    return w.finish({"models": ds.models, "space": space, "neighbour_space": neighbour_space or space, "size": size,
                     "data": str(Path(data).resolve()), "weights": None if weights is None else str(weights),
                     "per_model": per_model, "chunk": chunk, "memory_budget": memory_budget})


def write_in_ram(out: Path, art, labels, models: list[str], meta: dict) -> dict:
    """The store of artifacts already in memory (the in-RAM `manifpt artifacts`), one chunk."""
    w = ChunkedWriter(out, len(labels), tuple(art.artifact.shape[1:]), len(labels), {"in_ram": True, **meta})
    w.write(0, {"artifacts": art.artifact.numpy(), "labels": labels.numpy(), "index": art.index.numpy(),
                "distance": art.distance.numpy(), "identical": art.identical.numpy()})
    return w.finish({"models": models, **meta, "chunk": len(labels)})


def adopt_project(project_dir: Path, out: Path, *, labels_path: Path | None = None, memory_budget: int | None = None) -> dict:
    """A store from `manifpt project`'s output folder (one process or torchrun): see the module docstring."""
    project_dir, out = Path(project_dir), Path(out)
    manifest_path = project_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"--from-project {project_dir} has no manifest.json: not a finished `manifpt project` run")
    manifest = json.loads(manifest_path.read_text())
    m = manifest["shape"]["fakes"][0]
    fakes = Path(manifest["fakes"])
    if labels_path is not None:
        labels = np.asarray(load_npy(labels_path, "--labels", mmap_mode=None))
        if labels.shape != (m,) or labels.dtype.kind not in "iu":
            raise ValueError(f"--labels {labels_path} must be ({m},) integers, got {labels.shape} {labels.dtype}")
        models = [str(i) for i in range(int(labels.max()) + 1)]
    elif fakes.is_dir() and (fakes / "real").is_dir():  # the same file list as project_run's _Source
        files = [f for f in list_images(fakes) if f.relative_to(fakes).parts[0] != "real"]
        models = sorted({f.relative_to(fakes).parts[0] for f in files})
        if len(files) != m:
            raise ValueError(f"--from-project: {fakes} now holds {len(files)} generated images, the projection {m}")
        labels = np.array([models.index(f.relative_to(fakes).parts[0]) for f in files], dtype=np.int64)
    else:
        raise ValueError(f"--from-project: its --fakes {fakes} is not a GM folder, so the models are unknown: pass --labels FILE.npy")
    out.mkdir(parents=True, exist_ok=True)
    partial = out / ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    names = {"artifacts": "artifacts.npy", "index": "index.npy", "distance": "distance.npy"}
    for name, src in names.items():
        try:
            os.link(project_dir / src, partial / f"{name}.npy")
        except OSError:  # another file system: copied in chunks
            _copy_chunks(project_dir / src, partial / f"{name}.npy", memory_budget)
    np.save(partial / "labels.npy", labels.astype(np.int64))
    dist_mm = np.load(partial / "distance.npy", mmap_mode="r")
    np.save(partial / "identical.npy", np.asarray(dist_mm) == 0)
    del dist_mm
    (out / "store.json").unlink(missing_ok=True)
    for name in ARRAYS:
        os.replace(partial / f"{name}.npy", out / f"{name}.npy")
    shutil.rmtree(partial)
    store = {"format": FORMAT, "rows": m, "models": models, "space": manifest.get("space"),
             "neighbour_space": manifest.get("space"), "size": manifest.get("size"), "data": str(fakes),
             "from_project": str(project_dir.resolve()), "world_size": manifest.get("world_size")}
    atomic_write_json(out / "store.json", store)
    return store


def _copy_chunks(src: Path, dst: Path, memory_budget: int | None) -> None:
    a = np.load(src, mmap_mode="r")
    step = chunk_rows(a[0:1].nbytes, memory_budget, copies=2)
    b = np.lib.format.open_memmap(dst, mode="w+", dtype=a.dtype, shape=a.shape)
    for lo in range(0, len(a), step):
        b[lo : lo + step] = a[lo : lo + step]
    b.flush()
