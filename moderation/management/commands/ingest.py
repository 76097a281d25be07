"""`manage.py ingest PATH... [--manifest FILE.jsonl] [--inline] [--wait] [--json]`

Files or folders (walked recursively; symbolic links inside folders are skipped so a folder
cannot smuggle in files from elsewhere). A manifest has one `{"path": ..., "caption": ...}` per
line, paths relative to the manifest. Progress goes to stderr; with --json, one object per input
goes to stdout. The exit status is 1 when an input could not be ingested at all (missing,
unreadable, skipped); a video that was ingested and then failed processing is a result, reported
with its reason.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from moderation import pipeline, scoring
from moderation.actions.ingest import check_policy, do_ingest
from moderation.actions.validation import ActionError
from moderation.models import Video


@dataclass
class Input:
    path: Path
    caption: str = ""
    title: str = ""
    error: str = ""  # set when the input cannot even be read


def walk(paths: list[str]) -> list[Input]:
    inputs: list[Input] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.name.startswith("."):
                    continue
                if child.is_symlink():
                    inputs.append(Input(child, error="Skipped: a symbolic link inside a folder."))
                elif child.is_file():
                    inputs.append(Input(child))
        elif path.is_file():
            inputs.append(Input(path))
        else:
            inputs.append(Input(path, error="No such file or folder."))
    return inputs


def read_manifest(manifest: str) -> list[Input]:
    base = Path(manifest).parent
    inputs = []
    try:
        lines = Path(manifest).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CommandError(f"Cannot read the manifest {manifest}: {error.strerror}.") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            path = Path(entry["path"])
        except (ValueError, KeyError, TypeError):
            raise CommandError(f"{manifest}:{number}: expected a JSON object with a \"path\".") from None
        path = path if path.is_absolute() else base / path
        inputs.append(Input(path, caption=str(entry.get("caption") or ""), title=str(entry.get("title") or ""),
                            error="" if path.is_file() else "No such file."))
    return inputs


def describe(item: Input, video: Video | None, duplicate: bool) -> dict:
    """The JSON object printed for one input."""
    if video is None:
        return {"path": str(item.path), "video_id": None, "state": None, "error": item.error, "duplicate": False,
                "transcript": "", "ocr_text": "", "duration_s": None, "has_audio": None, **cascade_fields(None)}
    video.refresh_from_db()
    media = getattr(video, "media", None)
    return {
        "path": str(item.path),
        "video_id": video.pk,
        "state": video.state,
        "error": video.error_reason,
        "duplicate": duplicate,
        "transcript": " ".join(video.transcript.values_list("text", flat=True)).strip(),
        "ocr_text": " ".join(video.ocr_lines.values_list("text", flat=True)).strip(),
        "duration_s": media.duration_s if media else None,
        "has_audio": media.has_audio if media else None,
        **cascade_fields(video),
    }


def cascade_fields(video: Video | None) -> dict:
    """What the cascade concluded: the final label, which stage decided, and each stage's output."""
    predictions = {p.stage: p for p in video.predictions.order_by("created_at")} if video else {}
    baseline, mllm = predictions.get("baseline"), predictions.get("mllm")
    routing = getattr(baseline, "routing", None) if baseline else None
    return {
        "final_label": (video.final_label or None) if video else None,
        "decided_by": (video.decided_by or None) if video else None,
        "decision": (video.decision or None) if video else None,
        "entropy": baseline.entropy if baseline else None,
        "probabilities": baseline.probabilities if baseline else None,
        "threshold": routing.threshold if routing else None,
        "routed_to_mllm": routing.routed_to_mllm if routing else None,
        "mllm_probabilities": mllm.probabilities if mllm else None,
        "rationale": mllm.rationale if mllm else None,
        "modality_contributions": mllm.modality_contributions if mllm else None,
    }


class Command(BaseCommand):
    help = "Ingest video files, folders or a JSONL manifest; process them inline or on the workers."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*", help="Video files or folders.")
        parser.add_argument("--manifest", help="A JSONL file of {\"path\": ..., \"caption\": ...} lines.")
        parser.add_argument("--caption", default="", help="Caption for every input given as a path.")
        parser.add_argument("--policy", default=None, help="Policy slug (default: the default policy).")
        parser.add_argument("--inline", action="store_true", help="Run the whole pipeline in this process.")
        parser.add_argument("--wait", action="store_true", help="Wait until the workers have settled each video.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds --wait waits at most.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object per input on stdout.")
        parser.add_argument("--route", choices=Video.Route.values, default=Video.Route.AUTO,
                            help="auto: the entropy router decides; baseline or mllm: force that stage (audits).")

    def handle(self, *args, **options):
        inputs = walk(options["paths"])
        if options["manifest"]:
            inputs += read_manifest(options["manifest"])
        if not inputs:
            raise CommandError("Nothing to ingest: give files, folders or --manifest.")
        for item in inputs:
            item.caption = item.caption or options["caption"]
        try:
            check_policy(options["policy"])
        except ActionError as error:
            raise CommandError(error.message) from None
        if options["inline"]:
            pipeline.ensure_whisper_checkpoints()

        results = self.ingest_all(inputs, options)
        if options["inline"]:
            for _, video, _ in tqdm(results, desc="processing", unit="video", file=sys.stderr, disable=None):
                if video is not None:
                    scoring.run_inline(video.pk)
        elif options["wait"]:
            self.wait_for([video for _, video, _ in results if video is not None], options["timeout"])

        failed_to_read = 0
        for item, video, duplicate in results:
            record = describe(item, video, duplicate)
            failed_to_read += video is None
            if options["json"]:
                self.stdout.write(json.dumps(record, ensure_ascii=False))
            else:
                self.stdout.write(f"{record['path']}: {record['state'] or 'not ingested'}"
                                  + (f" ({record['error']})" if record["error"] else ""))
        if failed_to_read:
            sys.exit(1)

    def ingest_all(self, inputs: list[Input], options) -> list[tuple[Input, Video | None, bool]]:
        results = []
        for item in tqdm(inputs, desc="ingesting", unit="file", file=sys.stderr, disable=None):
            if item.error:
                results.append((item, None, False))
                continue
            try:
                with item.path.open("rb") as stream:
                    result = do_ingest(
                        stream, filename=item.path.name, source=Video.Source.CLI, caption=item.caption,
                        title=item.title, policy_slug=options["policy"], enqueue=not options["inline"],
                        route=options["route"],
                    )
            except OSError as error:
                item.error = f"Cannot read the file: {error.strerror}."
                results.append((item, None, False))
            except ActionError as error:
                item.error = error.message
                results.append((item, None, False))
            else:
                results.append((item, result.video, not result.created))
        return results

    def wait_for(self, videos: list[Video], timeout: float) -> None:
        pending = {video.pk for video in videos}
        deadline = time.monotonic() + timeout
        with tqdm(total=len(pending), desc="waiting", unit="video", file=sys.stderr, disable=None) as bar:
            while pending and time.monotonic() < deadline:
                settled = pipeline.settled_ids(pending)
                bar.update(len(settled))
                pending -= settled
                if pending:
                    time.sleep(0.5)
        if pending:
            raise CommandError(f"{len(pending)} videos were still processing after {timeout:.0f} s.")
