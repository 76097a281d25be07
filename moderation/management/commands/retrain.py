"""`manage.py retrain [--policy SLUG] [--wait] [--benchmark DIR]`: retrain a policy's models from
reviewer labels, or (--benchmark) fine-tune the active MLLM's LoRA on the synthetic benchmark that
`manage.py train` rendered into DIR, as the first run does after start-up.

Without --wait the run is queued for a gpu worker; with --wait it runs here, with a progress bar,
and the command prints the gate's decision (exit status 1 when the run failed)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm.auto import tqdm

from moderation import benchmark, retraining
from moderation.actions.ingest import check_policy
from moderation.actions.validation import ActionError
from moderation.models import TrainingRun


# Text-only examples of a first-run fine-tune: on two CPU cores one LoRA step of 4 examples of the
# 1.5B LLM takes seconds, so a few hundred keep the run near an hour (README).
LLM_FINETUNE_TEXT_ITEMS = 400


class Command(BaseCommand):
    help = ("Retrain the baseline and fine-tune the MLLM on reviewer labels; the new versions replace the active "
            "ones only if they beat them on the gold set by the promotion margin.")

    def add_arguments(self, parser):
        parser.add_argument("--policy", default=None, help="Policy slug (default: the default policy).")
        parser.add_argument("--wait", action="store_true", help="Run here and now instead of on a gpu worker.")
        parser.add_argument("--benchmark", type=Path, default=None,
                            help="Fine-tune the active MLLM on the benchmark rendered in this folder instead of on "
                                 "reviewer labels; gated on its test split.")
        parser.add_argument("--seed", type=int, default=0, help="The benchmark's seed (with --benchmark).")
        parser.add_argument("--if-none-yet", action="store_true",
                            help="With --benchmark: do nothing when the policy already had a benchmark fine-tune "
                                 "(scripts/run.sh asks on every start).")
        parser.add_argument("--text-items", type=int, default=LLM_FINETUNE_TEXT_ITEMS,
                            help="Text-only examples drawn on top of the rendered training videos (with --benchmark; "
                                 f"default {LLM_FINETUNE_TEXT_ITEMS}).")
        parser.add_argument("--gate-items", type=int, default=benchmark.GATE_TEXT_ITEMS,
                            help="Text-only items in held-out phrasings the fine-tune is judged on, beside the "
                                 f"benchmark's test videos (with --benchmark; default {benchmark.GATE_TEXT_ITEMS}).")

    def handle(self, *args, **options):
        source, trigger = None, TrainingRun.Trigger.COMMAND
        if options["benchmark"] is not None:
            trigger = TrainingRun.Trigger.BENCHMARK
            try:
                source = benchmark.finetune_source(options["benchmark"], options["seed"], options["text_items"],
                                                   options["gate_items"])
            except (FileNotFoundError, ValueError) as error:
                raise CommandError(str(error)) from None
        try:
            policy = check_policy(options["policy"])
            if source is not None and options["if_none_yet"] and TrainingRun.objects.filter(
                    policy=policy, trigger=TrainingRun.Trigger.BENCHMARK).exists():
                self.stdout.write(f"{policy} already had its benchmark fine-tune; nothing queued.")
                return
            run = retraining.do_request_training_run(policy, trigger=trigger, enqueue=not options["wait"],
                                                     source=source)
        except ActionError as error:
            raise CommandError(error.message) from None
        if not options["wait"]:
            self.stdout.write(f"Training run #{run.pk} of {policy} queued for a gpu worker.")
            return
        run = self.run_with_progress_bar(run)
        self.stdout.write(f"Training run #{run.pk}: {run.get_status_display()}.")
        if run.decision:
            self.stdout.write(run.decision)
        if run.status == TrainingRun.Status.FAILED:
            raise CommandError(run.error)

    def run_with_progress_bar(self, run: TrainingRun) -> TrainingRun:
        with tqdm(total=100, unit="%", desc=f"run #{run.pk}") as bar:
            def show(progress: float, step: str) -> None:
                bar.n = round(progress * 100)
                bar.set_postfix_str(step)  # also redraws the bar

            return retraining.run_training(run.pk, on_progress=show)
