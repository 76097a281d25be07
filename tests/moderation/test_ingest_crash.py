"""A process that dies while it copies an upload to its content address must not leave a truncated
file there: every later upload of the same bytes would reuse it as the original."""

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.db import connection

from moderation.actions.ingest import do_ingest
from moderation.models import Video

# A second process writes to the database: serialized rollback puts the seeded policy back.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Runs do_ingest in a child process whose files may grow to only half the upload once it has been
# spooled (SIGXFSZ at its default action kills the process), so it dies in the middle of copying
# the upload to the content-addressed path, with no chance to clean up.
CRASHING_INGEST = textwrap.dedent("""
    import resource, signal, sys
    import django
    django.setup()
    from moderation.actions import ingest

    spool = ingest._spool

    def spool_then_limit_file_size(stream):
        spooled = spool(stream)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (spooled[2] // 2, resource.RLIM_INFINITY))
        return spooled

    ingest._spool = spool_then_limit_file_size
    with open(sys.argv[1], "rb") as stream:
        ingest.do_ingest(stream, filename="clip.mp4", source="cli", caption="first try", enqueue=False)
""")


def test_a_crash_while_copying_leaves_no_truncated_original_for_later_uploads(settings, tmp_path):
    data = os.urandom(3 * 1024 * 1024)
    upload = tmp_path / "clip.mp4"
    upload.write_bytes(data)
    database = connection.settings_dict
    env = dict(os.environ, COEFVQ_MEDIA_ROOT=str(settings.MEDIA_ROOT),
               DATABASE_URL=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}")
    crashed = subprocess.run([sys.executable, "-c", CRASHING_INGEST, str(upload)], env=env, cwd=settings.BASE_DIR,
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGXFSZ, crashed.stderr  # killed mid-copy
    assert not Video.objects.exists()  # its transaction died with it
    left = [path for path in Path(settings.MEDIA_ROOT, "videos").rglob("*") if path.is_file()]
    assert left and all(path.stat().st_size < len(data) for path in left)  # the crash did cut a copy short

    video = do_ingest(io.BytesIO(data), filename="clip.mp4", source="cli", caption="second try", enqueue=False).video
    assert Path(video.file.path).read_bytes() == data
