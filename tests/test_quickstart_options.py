"""hwnas quickstart's choice of supernet and predictor: each space's shipped ones, or a clear error.

The quickstart's whole run is CI's first README command; these check only how it picks its inputs,
so a space without shipped files fails before anything is profiled, naming the file and the flag.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hwnas import paths
from hwnas.cli import main
from hwnas.quickstart import REPO_ROOT, QuickstartOptions


def test_a_space_resolves_to_its_own_shipped_supernet_and_predictor():
    opts = QuickstartOptions(space="fmnist-vgg")
    assert opts.supernet_path() == REPO_ROOT / "checkpoints" / "fmnist-vgg.safetensors"
    assert opts.predictor_path() == REPO_ROOT / "predictors" / "fmnist-vgg" / "accuracy_xgb.json"
    given = QuickstartOptions(space="fmnist-vgg", supernet=REPO_ROOT / paths.DEFAULT_SUPERNET)
    assert given.supernet_path() == REPO_ROOT / paths.DEFAULT_SUPERNET  # an explicit path wins


def test_a_space_without_shipped_files_fails_before_profiling_and_names_the_flag(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--space", "ofa-resnet50", "--out", str(out), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "ships no checkpoints/ofa-resnet50.safetensors" in err and "--supernet" in err
    assert not out.exists()


def test_an_explicit_path_that_is_missing_is_named_as_given(tmp_path, capsys):
    missing = tmp_path / "nowhere.safetensors"
    assert main(["quickstart", "--space", "fmnist-vgg", "--supernet", str(missing), "--out", str(tmp_path / "qs")]) != 0
    err = capsys.readouterr().err
    assert str(missing) in err and "ships no" not in err


def test_an_unknown_space_lists_the_known_ones(tmp_path, capsys):
    assert main(["quickstart", "--space", "no-such-space", "--out", str(tmp_path / "qs")]) != 0
    err = capsys.readouterr().err
    assert "unknown search space 'no-such-space'" in err and "fmnist-vgg" in err


def test_the_exported_models_are_scored_on_the_whole_test_set_by_default():
    assert QuickstartOptions().eval_images >= 10_000  # as the references' accuracies are
    assert Path(paths.shipped_supernet_path("fmnist-cnn")) == Path("checkpoints/fmnist-cnn.safetensors")


def _table(space):
    from hwnas.latency.table import LatencyTable

    return LatencyTable.load(REPO_ROOT / "latency_tables" / "cpu-1thread" / f"{space}.json", space)


def test_without_references_the_default_budget_is_half_the_largest_subnet_for_every_family():
    """It used the mbconv-only ``largest_architecture``, so a plain-family quickstart without
    --budget-ms died with an AttributeError after profiling."""
    from hwnas.families import largest_architecture
    from hwnas.quickstart import default_budget

    for space in ("fmnist-mbv3", "fmnist-resvgg"):
        table = _table(space)
        budget, why = default_budget(table, space)
        largest = table.predict(largest_architecture(space))
        assert budget == largest / 2 and table.min_latency_ms() < budget < largest and "half the largest" in why


def test_with_references_the_default_budget_is_the_slowest_ones_latency_timed_now():
    from hwnas.quickstart import default_budget

    table = _table("fmnist-resvgg")
    timed = [{"model": "mlp", "latency_ms_now": 0.036}, {"model": "small-cnn", "latency_ms_now": 0.33},
             {"model": "front000", "latency_ms_now": 9.0, "exported": True}]  # an exported model is no reference
    budget, why = default_budget(table, "fmnist-resvgg", timed)
    assert budget == 0.33 and "small-cnn" in why
    too_fast = [{"model": "tiny", "latency_ms_now": table.min_latency_ms() / 2}]  # no subnet could meet it
    assert default_budget(table, "fmnist-resvgg", too_fast) == default_budget(table, "fmnist-resvgg")


def test_a_resumed_run_keeps_the_budget_it_decided(monkeypatch, tmp_path):
    """Timed again, the references would give another budget, another front and a retraining folder that
    no longer matches its model."""
    from types import SimpleNamespace

    from hwnas import quickstart

    calls = []
    monkeypatch.setattr(quickstart, "default_budget", lambda table, space, timed: calls.append(1) or (0.3 + len(calls), "x"))
    opts = QuickstartOptions(out=tmp_path, references=None)
    profiled = SimpleNamespace(table=None)
    first = quickstart._default_budget(opts, tmp_path, profiled, None, lambda line: None)
    assert quickstart._default_budget(QuickstartOptions(out=tmp_path, references=None, resume=True), tmp_path,
                                      profiled, None, lambda line: None) == first == 1.3
    assert quickstart._default_budget(opts, tmp_path, profiled, None, lambda line: None) == 2.3  # a new run decides anew


def test_the_quickstart_passes_its_fine_tuning_epochs_to_the_export(monkeypatch, tmp_path):
    from hwnas.export import pipeline
    from hwnas.quickstart import _export

    seen = {}

    class Outcome:
        failed: list = []

    def export_run(run_dir, settings):
        seen["settings"] = settings
        return Outcome()

    monkeypatch.setattr(pipeline, "export_run", export_run)
    _export(QuickstartOptions(finetune_epochs=3), tmp_path / "search", tmp_path / "export")
    assert (seen["settings"].finetune_epochs, seen["settings"].retrain_epochs) == (3, 0)  # one or the other
    _export(QuickstartOptions(), tmp_path / "search", tmp_path / "export")
    default = seen["settings"]
    assert default.finetune_epochs == 0 and default.retrain_epochs == 18 and default.train_top == 1
    _export(QuickstartOptions(retrain_epochs=0), tmp_path / "search", tmp_path / "export")
    assert seen["settings"].retrain_epochs == 0


def test_the_retraining_matches_the_references_budget():
    import json

    references = json.loads((REPO_ROOT / paths.REFERENCE_MODELS).read_text())
    assert QuickstartOptions().retrain_epochs == references["epochs"]


def test_fine_tuning_and_retraining_together_are_refused_by_name(tmp_path, capsys):
    assert main(["quickstart", "--finetune-epochs", "2", "--retrain-epochs", "3", "--out", str(tmp_path / "q")]) != 0
    assert "exclude each other" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_the_summary_says_whose_weights_each_model_has():
    from hwnas.quickstart import weights

    assert weights({"trained": None}) == "supernet"
    assert weights({"trained": {"mode": "retrain", "epochs": 18}}) == "retrained 18 ep"
    assert weights({"finetuned": {"epochs": 6}}) == "fine-tuned 6 ep"  # a run from before retraining existed


def test_the_embedded_default_is_the_resvgg_supernet():
    """The default that meets issue 14's quality thresholds (supernet_quality_resvgg.json), everywhere at once."""
    from hwnas.search.runner import DEFAULT_SUPERNET
    from hwnas.training import TrainConfig

    assert QuickstartOptions().space == TrainConfig().space == paths.DEFAULT_SPACE == "fmnist-resvgg"
    assert DEFAULT_SUPERNET == paths.shipped_supernet_path(paths.DEFAULT_SPACE)
    assert (REPO_ROOT / DEFAULT_SUPERNET).is_file() and (REPO_ROOT / paths.default_predictor_path("fmnist-resvgg")).is_file()


def test_resume_keeps_the_run_folder_and_lets_the_export_reuse_its_trainings(monkeypatch, tmp_path):
    from hwnas.errors import ConfigError
    from hwnas.export import pipeline
    from hwnas.quickstart import _export, run_folder

    out = tmp_path / "qs"
    kept = out / "export" / "finetune" / "front000" / "train_state.pt"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"half a fine-tune")
    assert run_folder(QuickstartOptions(out=out, resume=True)) == out and kept.exists()
    with pytest.raises(ConfigError, match="--overwrite"):  # neither --overwrite nor --resume
        run_folder(QuickstartOptions(out=out))
    seen = {}

    class Outcome:
        failed: list = []

    monkeypatch.setattr(pipeline, "export_run", lambda run_dir, settings: seen.update(s=settings) or Outcome())
    _export(QuickstartOptions(out=out, resume=True), out / "search", out / "export")
    assert seen["s"].overwrite  # the export folder holds the interrupted run's fine-tunes
    assert run_folder(QuickstartOptions(out=out, overwrite=True)) == out and not kept.exists()


def test_bad_training_options_fail_before_anything_is_profiled(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--train-top", "0", "--out", str(out), "--no-progress"]) != 0
    assert "--train-top must be a positive number" in capsys.readouterr().err and not out.exists()
    assert main(["quickstart", "--retrain-epochs", "-1", "--out", str(out), "--no-progress"]) != 0
    assert "--retrain-epochs must be >= 0" in capsys.readouterr().err and not out.exists()
