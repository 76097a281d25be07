import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from moderation.models import Video

pytestmark = pytest.mark.django_db


def run_ingest(capsys, *args) -> list[dict]:
    call_command("ingest", *args)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_inline_json_over_a_folder(tmp_path, capsys, speech_text_clip, silent_clip, garbage_file):
    folder = tmp_path / "inbox"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(speech_text_clip, folder / "fête ünicode.mp4")
    shutil.copy(silent_clip, folder / "nested" / "silent.mp4")
    shutil.copy(garbage_file, folder / "broken.mp4")
    (folder / "link.mp4").symlink_to("/etc/hostname")
    with pytest.raises(SystemExit) as exit_info:  # the skipped link makes the exit status 1
        call_command("ingest", str(folder), "--inline", "--json")
    assert exit_info.value.code == 1
    lines = capsys.readouterr().out.splitlines()
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, lines)}

    speech = records["fête ünicode.mp4"]
    assert speech["state"] == "extracted" and speech["has_audio"] is True
    assert "festival" in speech["transcript"].lower() and "FESTIVAL" in speech["ocr_text"].upper()
    assert speech["duration_s"] > 2
    assert records["silent.mp4"]["has_audio"] is False and records["silent.mp4"]["transcript"] == ""
    assert records["broken.mp4"]["state"] == "failed" and records["broken.mp4"]["error"]
    assert records["link.mp4"]["video_id"] is None and "symbolic link" in records["link.mp4"]["error"]
    assert Video.objects.count() == 3


def test_manifest_gives_captions_and_missing_files_are_reported(tmp_path, capsys, silent_clip):
    shutil.copy(silent_clip, tmp_path / "a.mp4")
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text(json.dumps({"path": "a.mp4", "caption": "my cat"}) + "\n"
                        + json.dumps({"path": "gone.mp4", "caption": "x"}) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        run_ingest(capsys, "--manifest", str(manifest), "--json")
    assert exit_info.value.code == 1
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["state"] == "received" and Video.objects.get().caption == "my cat"
    assert records[1]["video_id"] is None and records[1]["error"] == "No such file."


def test_bad_manifest_line_is_a_clear_error(tmp_path):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text("not json\n")
    with pytest.raises(CommandError, match="bad.jsonl:1"):
        call_command("ingest", "--manifest", str(manifest))
