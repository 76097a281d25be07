"""`manage.py retrain [--policy SLUG] [--wait]`: retrain a policy's models from reviewer labels.

Without --wait the run is queued for a gpu worker; with --wait it runs here, with a progress bar,
and the command prints the gate's decision (exit status 1 when the run failed)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm.auto import tqdm

from moderation import actions, retraining
from moderation.models import TrainingRun


class Command(BaseCommand):
    help = ("Retrain the baseline and fine-tune the MLLM on reviewer labels; the new versions replace the active "
            "ones only if they beat them on the gold set by the promotion margin.")

    def add_arguments(self, parser):
        parser.add_argument("--policy", default=None, help="Policy slug (default: the default policy).")
        parser.add_argument("--wait", action="store_true", help="Run here and now instead of on a gpu worker.")

    def handle(self, *args, **options):
        try:
            policy = actions.check_policy(options["policy"])
            run = retraining.do_request_training_run(policy, trigger=TrainingRun.Trigger.COMMAND,
                                                     enqueue=not options["wait"])
        except actions.ActionError as error:
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
