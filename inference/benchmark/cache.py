"""Feature cache: decode + ASR + OCR once per video and extractor version, reuse everywhere.

One file per video, named by the video's sha256 and the extractor's version string, so a
renamed or re-rendered video and a changed extractor never read stale features. Files are
written with torch.save and read back with pickle (weights_only=False): the cache holds
dataclasses and arrays this library wrote itself, so only point it at a cache you made.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from inference.benchmark.render import load_manifest, sha256_file

Extract = Callable[[Path, str], dict]  # (video path, caption) -> features


def cache_path(cache_dir: Path, sha256: str, extractor_version: str) -> Path:
    safe_version = re.sub(r"[^A-Za-z0-9._-]", "_", extractor_version)
    return Path(cache_dir) / safe_version / f"{sha256}.pt"


def _row_sha(row: dict[str, Any], video: Path) -> str:
    return row.get("sha256") or sha256_file(video)


def build_feature_cache(manifest_path: Path, cache_dir: Path, extract: Extract, extractor_version: str = "v1",
                        progress: bool = True) -> None:
    """Call `extract(video_path, caption)` for every manifest video without a cached result and
    store what it returns. Resumable: each result is written atomically as soon as it exists."""
    manifest_path = Path(manifest_path)
    root = manifest_path.parent
    rows = load_manifest(manifest_path)
    for row in tqdm(rows, desc=f"features {extractor_version}", unit="video", disable=not progress):
        video = root / row["path"]
        target = cache_path(cache_dir, _row_sha(row, video), extractor_version)
        if target.is_file():
            continue
        features = extract(video, row["caption"])
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".pt.tmp")
        torch.save(features, tmp)
        os.replace(tmp, target)


def load_cached(manifest_path: Path, cache_dir: Path, extractor_version: str = "v1",
                split: str | None = None) -> list[tuple[dict[str, Any], dict]]:
    """(manifest row, features) for every video of `split` (all when None). Raises
    FileNotFoundError naming the first missing video when the cache is incomplete."""
    manifest_path = Path(manifest_path)
    rows = [r for r in load_manifest(manifest_path) if split is None or r["split"] == split]
    out = []
    missing = []
    for row in rows:
        target = cache_path(cache_dir, _row_sha(row, manifest_path.parent / row["path"]), extractor_version)
        if not target.is_file():
            missing.append(row["path"])
            continue
        out.append((row, torch.load(target, weights_only=False)))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(rows)} videos have no cached features for {extractor_version!r} "
            f"(first: {missing[0]}); run build_feature_cache first"
        )
    return out
