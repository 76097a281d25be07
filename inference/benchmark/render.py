"""Writing the benchmark to disk: one video per item and a manifest.jsonl beside them."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from inference.benchmark.generate import BenchmarkItem
from inference.synth import SynthSpec, render_video

MANIFEST = "manifest.jsonl"


def item_to_spec(item: BenchmarkItem, width: int = 320, height: int = 240, fps: int = 10) -> SynthSpec:
    return SynthSpec(
        onscreen_text=[tuple(seg) for seg in item.onscreen_text],
        speech_text=item.speech_text,
        voice=item.voice,
        speed_wpm=item.speed,
        pitch=item.pitch,
        motif=item.motif,
        duration_s=item.duration_s,
        width=width,
        height=height,
        fps=fps,
        container=item.container,
        with_audio=item.with_audio,
        rotation=item.rotation,
        background_seed=item.seed,
    )


def video_relpath(item: BenchmarkItem) -> str:
    return f"{item.split}/{item.id}.{item.container}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _render_one(item: BenchmarkItem, path: Path, width: int, height: int, fps: int) -> str:
    """Render to a temporary name and rename, so an interrupted run leaves no half file that a
    resumed run would take as done."""
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    render_video(partial, item_to_spec(item, width, height, fps))
    os.replace(partial, path)
    return item.id


def manifest_row(item: BenchmarkItem, out_dir: Path) -> dict[str, Any]:
    rel = video_relpath(item)
    row = {"path": rel, "caption": item.caption, "label": item.label, "kind": item.kind, "split": item.split}
    row.update({k: v for k, v in asdict(item).items() if k not in row})
    row["sha256"] = sha256_file(out_dir / rel)
    return row


def render_dataset(items: list[BenchmarkItem], out_dir: Path, progress: bool = True, workers: int = 2,
                   width: int = 320, height: int = 240, fps: int = 10) -> Path:
    """Render every item not already on disk (resume), then write out_dir/manifest.jsonl.
    Returns the manifest's path. Paths in the manifest are relative to out_dir."""
    out_dir = Path(out_dir)
    for split in {item.split for item in items}:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
    todo = [it for it in items if not (out_dir / video_relpath(it)).is_file()]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="render", unit="video", disable=not progress)
    if todo:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_render_one, it, out_dir / video_relpath(it), width, height, fps) for it in todo]
            for future in as_completed(futures):
                future.result()  # a failed render stops the run; the rest resumes next time
                bar.update(1)
    bar.close()
    manifest = out_dir / MANIFEST
    tmp = manifest.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(manifest_row(item, out_dir), ensure_ascii=False) + "\n")
    os.replace(tmp, manifest)
    return manifest


def load_manifest(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_items(path: Path) -> list[BenchmarkItem]:
    return [BenchmarkItem.from_dict(row) for row in load_manifest(path)]
