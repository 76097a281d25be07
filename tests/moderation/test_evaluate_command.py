"""`manage.py evaluate`: the active models and the cascade on a benchmark split.

The benchmark here is the smallest one with hard cases in its test split: 8 train, 4 val (the
realistic mix, which at 4 videos has no hard case) and 4 test videos of four kinds, two of them
hard. The command is given it with `--data`, which is how a prepared benchmark folder is reused."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from inference.benchmark import GeneratorConfig, generate_specs, render_dataset
from moderation.models import CascadeConfig

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_model_dir")]

TEST_KINDS = ("easy_ok", "caption", "speech_only", "context_ok")


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench")
    config = GeneratorConfig(seed=3, n_train=8, n_val=4, n_test=4, mix_test={kind: 1.0 for kind in TEST_KINDS})
    render_dataset(generate_specs(config), folder, progress=False)
    return folder


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.slow
def test_report_of_the_active_models_and_refusal_of_a_split_without_hard_cases(bench_dir, tmp_path):
    run("train", "all", "--data", str(bench_dir), "--epochs", "1", "--activate")
    config = CascadeConfig.objects.get(is_active=True)
    report_file = tmp_path / "reports" / "test.json"

    printed = json.loads(run("evaluate", "--data", str(bench_dir), "--out", str(report_file)))

    assert json.loads(report_file.read_text()) == printed
    assert printed["models"] == {"baseline": str(config.baseline_version), "mllm": str(config.mllm_version),
                                 "cascade_config": config.version, "data": str(bench_dir), "split": "test"}
    assert printed["n"] == 4 and printed["hard_fraction"] == pytest.approx(0.5)
    for model in ("baseline", "mllm"):
        assert set(printed[model]["per_kind"]) == set(TEST_KINDS)
        assert 0.0 <= printed[model]["binary"]["f1"] <= 1.0
    assert set(printed["cascade"]) == {"entropy", "random", "oracle"}
    assert [point["budget"] for point in printed["cascade"]["entropy"]] == [0.05, 0.10, 0.20, 0.30]

    # The val split follows the realistic mix, which at 4 videos has no hard case to measure.
    with pytest.raises(CommandError, match="The val split of .* has no hard cases"):
        run("evaluate", "--data", str(bench_dir), "--split", "val")


def test_without_active_models_it_says_how_to_get_them(tmp_path):
    with pytest.raises(CommandError, match="run `manage.py train all --activate`"):
        run("evaluate", "--data", str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # refused before rendering anything


@pytest.mark.parametrize("args, message", [
    (["--policy", "nope"], "There is no policy called 'nope'"),
    (["--split", "train"], "invalid choice: 'train'"),
    (["--videos", "5"], "--videos 5 is too few"),
])
def test_bad_arguments_are_clear_errors(args, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        run("evaluate", "--data", str(tmp_path), *args)
