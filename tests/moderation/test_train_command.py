"""`manage.py train` at its smallest: 12 benchmark videos (4 train, 4 val, 4 test), one epoch,
stage 2 on the tiny random Qwen2 (tests/conftest.py points COEFVQ_LLM_PATH at it).

The benchmark is rendered and its features cached once per module in a shared folder (`--data`),
so only the first test pays for rendering, Whisper and OCR; every test trains for real."""

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from inference.policy import LABELS
from inference.training_set import NO_VIDEO, load_training_set
from small_models import caption_only
from moderation import benchmark, scoring
from inference.llm import LLM_LORA_LR, LLMClassifier
from moderation.models import CascadeConfig, ModelVersion, Policy, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_model_dir")]

TEXT_ITEMS = 24
SMALLEST = ["--videos", "12", "--epochs", "1", "--text-items", str(TEXT_ITEMS)]
# scripts/run.sh's line: the baseline trains, stage 2 is the LLM as its prompt makes it.
FIRST_RUN = ["all", "--videos", "12", "--epochs", "0", "--text-items", str(TEXT_ITEMS), "--activate",
             "--if-none-active"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench") / "train-12"


def train(*args: str) -> str:
    out = StringIO()
    call_command("train", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.slow
def test_first_run_line_trains_registers_and_activates_then_does_nothing(bench_dir, fresh_model_dir):
    first_run = [*FIRST_RUN, "--data", str(bench_dir)]
    out = train(*first_run)

    icd = Policy.objects.get(slug="icd")
    baseline, mllm = (ModelVersion.objects.get(policy=icd, kind=kind) for kind in ("baseline", "mllm"))
    for version in (baseline, mllm):
        assert version.status == "active"
        assert Path(version.artifact_path).is_relative_to(fresh_model_dir) and Path(version.artifact_path).is_dir()
        test = version.metrics["test"]
        assert test["n"] == 4 and 0.0 <= test["accuracy"] <= 1.0 and 0.0 <= test["binary"]["f1"] <= 1.0
        assert f"{version}: test accuracy" in out
    config = CascadeConfig.objects.get(policy=icd, is_active=True)
    assert (config.baseline_version, config.mllm_version) == (baseline, mllm)
    assert f"Active: cascade configuration v{config.version}." in out
    # Whether stage 2 decides what stage 1 routes was judged on the 4 test videos, and said.
    routing = re.search(r"Routing, on 4 held-out videos \(\d routed\): the cascade's decisions F1 ([\d.]+) against "
                        r"([\d.]+) for stage 1 alone, its labels' accuracy ([\d.]+) against ([\d.]+), so stage 2 "
                        r"(decides|is on trial)", out)
    assert routing is not None, out
    f1, stage1_f1, accuracy, stage1_accuracy = map(float, routing.groups()[:4])
    assert config.stage2_decides == (f1 >= stage1_f1 and accuracy >= stage1_accuracy) == (routing[5] == "decides")

    # The artifacts load the way the pipeline loads them, and give a distribution over the labels.
    scored = scoring.load_baseline(baseline.pk).score(caption_only("selling pistols cheap, no papers"))
    assert set(scored.probs) == set(LABELS) and sum(scored.probs.values()) == pytest.approx(1.0)
    stage2 = scoring.load_mllm(mllm.pk)
    assert isinstance(stage2, LLMClassifier) and stage2.config.labels == LABELS
    assert stage2.config.policy_text == icd.description  # the prompt reads the Policy row
    assert mllm.metrics["fine_tuned"] is False
    # The router starts calibrated: the baseline's entropies on the validation videos (4 here).
    assert len(baseline.reference_entropies) == 4 and all(e >= 0 for e in baseline.reference_entropies)
    # The baseline keeps the rows it learned from (train and val: all but the 4 test videos, and
    # the text-only examples); both models say how many text-only examples they learned from.
    kept = load_training_set(baseline.artifact_path)
    assert len(kept) == 12 - 4 + TEXT_ITEMS and (kept.video_ids == NO_VIDEO).all() and set(kept.y) <= set(LABELS)
    assert baseline.metrics["text_only_rows"] == TEXT_ITEMS

    # The held-out test videos become the demo manifest that scripts/run.sh queues.
    demo = [json.loads(line) for line in (bench_dir / "demo.jsonl").read_text().splitlines()]
    assert len(demo) == 4 and all((bench_dir / row["path"]).is_file() for row in demo)

    # scripts/run.sh runs the same line on every start: with active models it changes nothing.
    assert train(*first_run).strip() == "Active models exist; nothing to train."
    assert ModelVersion.objects.count() == 2
    assert CascadeConfig.objects.filter(policy=icd).count() == 1


@pytest.mark.slow
def test_training_without_activate_registers_a_candidate_and_leaves_service_alone(bench_dir):
    train("baseline", *SMALLEST, "--data", str(bench_dir))

    version = ModelVersion.objects.get()
    assert (version.kind, version.status) == ("baseline", "candidate")
    assert "temperature" in version.config and version.metrics["test"]["n"] == 4
    assert not CascadeConfig.objects.filter(is_active=True).exists()


@pytest.mark.slow
def test_each_model_gets_its_own_number_of_text_only_examples_unless_one_is_given(bench_dir, monkeypatch):
    # The defaults (1,500 for the baseline, 3,000 for the MLLM) shrunk to keep the test fast.
    monkeypatch.setattr("moderation.management.commands.train.BASELINE_TEXT_ITEMS", 6)
    monkeypatch.setattr("moderation.management.commands.train.MLLM_TEXT_ITEMS", 10)
    smallest_without_text_items = SMALLEST[: SMALLEST.index("--text-items")]
    train("all", *smallest_without_text_items, "--data", str(bench_dir))

    baseline, mllm = (ModelVersion.objects.get(kind=kind) for kind in ("baseline", "mllm"))
    assert (baseline.metrics["text_only_rows"], mllm.metrics["text_only_items"]) == (6, 10)
    assert mllm.metrics["lr"] == LLM_LORA_LR and mllm.metrics["fine_tuned"] is True
    # What the fine-tune learned from, for fine-tunes on reviewer labels to replay.
    assert benchmark.replay_sources(mllm.artifact_path) == [benchmark.finetune_source(bench_dir, seed=0, text_items=10)]


@pytest.mark.parametrize("args, message", [
    (["cnn"], "invalid choice: 'cnn'"),
    (["all", "--policy", "nope"], "There is no policy called 'nope'"),
    (["all", "--videos", "5"], "--videos 5 is too few"),
    (["mllm", "--stage2", "minilm", "--epochs", "0"], "--epochs must be at least 1 for --stage2 minilm"),
    (["mllm", "--epochs", "-1"], "--epochs must be at least 0 for --stage2 llm"),
    (["mllm", "--lora-r", "0"], "--lora-r must be at least 1"),
    (["all", "--text-items", "-1"], "--text-items must be 0 or more"),
    (["mllm", "--lr", "0"], "--lr must be more than 0"),
])
def test_bad_arguments_are_clear_errors_before_any_work(args, message, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    with pytest.raises(CommandError, match=message):
        train(*args)
    assert not (tmp_path / "var" / "bench").exists()
    assert not ModelVersion.objects.exists()


@pytest.mark.slow
def test_the_first_run_fine_tune_is_a_gated_training_run_on_the_benchmark(bench_dir):
    train(*FIRST_RUN, "--data", str(bench_dir))
    prompted = ModelVersion.objects.get(kind="mllm", status="active")
    out = StringIO()
    call_command("retrain", "--benchmark", str(bench_dir), "--text-items", "8", "--gate-items", "6", "--wait",
                 stdout=out, stderr=StringIO())

    run = TrainingRun.objects.get()
    assert run.trigger == "benchmark" and run.status in ("promoted", "refused"), run.error
    assert run.benchmark["text_items"] == 8 and run.train_examples == 4 + 8
    # judged on the 4 test videos and 6 text-only items in phrasings the generator holds out
    assert run.benchmark["gate_items"] == 6 and run.gold_examples == 4 + 6
    candidate = run.mllm_candidate
    assert candidate is not None and run.baseline_candidate is None  # the baseline is not refit
    report = run.metrics["mllm"]
    assert {"active", "candidate", "training"} <= set(report) and report["active"]["n"] == 4 + 6
    assert ("Held-out set, never trained on: the benchmark's 4 test videos and 6 text-only items in held-out "
            "phrasings") in run.decision and run.decision in out.getvalue()
    active = ModelVersion.objects.get(kind="mllm", status="active")
    assert active == (candidate if run.status == "promoted" else prompted)
    # A promoted fine-tune is judged as the cascade's second stage on the 4 videos.
    if run.status == "promoted":
        routing = run.metrics["routing"]
        assert "Routing, on 4 held-out videos" in run.decision
        assert routing["stage2_decides"] == (routing["decisions"]["candidate_f1"] >= routing["decisions"]["active_f1"]
                                             and routing["cascade_accuracy"] >= routing["stage1_accuracy"])
        assert CascadeConfig.objects.get(is_active=True).stage2_decides == routing["stage2_decides"]
    assert isinstance(scoring.load_mllm(candidate.pk), LLMClassifier)
    assert benchmark.replay_sources(scoring.artifact_dir(candidate)) == [run.benchmark]

    # scripts/run.sh asks on every start; one benchmark fine-tune per install.
    again = StringIO()
    call_command("retrain", "--benchmark", str(bench_dir), "--if-none-yet", stdout=again)
    assert "already had its benchmark fine-tune" in again.getvalue() and TrainingRun.objects.count() == 1


def test_a_benchmark_fine_tune_needs_a_rendered_benchmark(tmp_path):
    with pytest.raises(CommandError, match="holds no rendered benchmark"):
        call_command("retrain", "--benchmark", str(tmp_path / "nothing"), stdout=StringIO())
    assert not TrainingRun.objects.exists()
