"""One Video per upload: uploads of the same bytes with another uploader, caption, title or route
are videos of their own (they share the file and the media work by sha256). The same upload sent
again still finds its video, by `upload_digest`."""

import hashlib
import json

from django.db import migrations, models


def upload_digest(video) -> str:
    # As moderation.actions.ingest.upload_digest computed it when this migration was written.
    key = [video.sha256, video.uploader_id, video.caption, video.title, video.route]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def fill_upload_digests(apps, schema_editor):
    Video = apps.get_model("moderation", "Video")
    for video in Video.objects.only("sha256", "uploader_id", "caption", "title", "route").iterator():
        Video.objects.filter(pk=video.pk).update(upload_digest=upload_digest(video))


class Migration(migrations.Migration):

    dependencies = [
        ("moderation", "0013_review_task_second_review_and_correction"),
    ]

    operations = [
        migrations.AddField(
            model_name="video",
            name="upload_digest",
            field=models.CharField(blank=True, null=True, max_length=64, help_text="Of the bytes and everything the "
                                   "uploader chose (uploader, caption, title, route): the same upload sent again (a "
                                   "retry) finds its video; anything else is another upload."),
        ),
        migrations.RunPython(fill_upload_digests, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="video", name="one_video_per_content"),
        migrations.AddConstraint(
            model_name="video",
            constraint=models.UniqueConstraint(fields=("policy", "upload_digest"), name="one_video_per_upload"),
        ),
        migrations.AddIndex(model_name="video", index=models.Index(fields=["sha256"], name="video_content")),
        migrations.AlterField(
            model_name="video",
            name="sha256",
            field=models.CharField(max_length=64, help_text="Of the bytes: uploads of the same bytes share the file "
                                   "and the media work (frames, transcript, on-screen text)."),
        ),
    ]
