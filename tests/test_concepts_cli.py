"""Issue 16: `tdabench concepts` refuses bad input with exit code 2 before anything trains."""

from __future__ import annotations

import pytest

from tdabench.cli import main
from tdabench.concepts.options import ConceptOptions, removal_ks
from tdabench.errors import TdabenchError


@pytest.mark.parametrize("args, message", [
    (["--task", "digits-mlp@small", "--layers", "0,fc9"], "probe layer 'fc9'"),
    (["--task", "digits-mlp@small", "--removal-layer", "fc9"], "probe layer 'fc9'"),
    (["--task", "breast-cancer-mlp"], "names no `concept`"),
    (["--task", "digits-mlp@small", "--fractions", "0.001,0.05"], "each k must lie in 1"),
    (["--task", "digits-mlp@small", "--fractions", "0.05,1.5"], "fractions must be strictly increasing"),
    (["--task", "digits-mlp@small", "--fractions", "0.1,0.05"], "fractions must be strictly increasing"),
    (["--task", "digits-mlp@small", "--removal", "retrain,sideways"], "removal mode 'sideways'"),
    (["--task", "digits-mlp@small", "--seeds", "0"], "seeds must be a positive integer"),
    (["--task", "digits-mlp@small", "--estimators", "grad-dto"], "grad-dto"),
    (["--task", "digits-mlp@small", "--removal-estimator", "grad-dot,trak"], "takes one estimator"),
    (["--task", "digits-mlp@small", "--metric", "kendall"], "kendall"),
])
def test_bad_input_exits_2_before_training(args, message, tmp_path, capsys):
    code = main(["concepts", *args, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                 "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "cache" / "final_models").exists()  # no final model was trained
    assert not (tmp_path / "out" / "concepts.json").exists()


def test_ks_round_the_fractions_of_the_training_split():
    assert removal_ks((0.01, 0.05, 0.1), 1000) == [10, 50, 100]
    with pytest.raises(TdabenchError, match="same k twice"):
        removal_ks((0.01, 0.012), 100)
    with pytest.raises(TdabenchError, match="each k must lie"):
        removal_ks((0.5, 0.999), 100)  # k = 100 = n_train leaves nothing to train on


def test_options_settings_are_json_values():
    settings = ConceptOptions(task="mnist-cnn", layers=("2", "4")).settings()
    assert settings["layers"] == ["2", "4"] and settings["estimators"] == ["grad-dot", "trak"]
    assert settings["removal"] == ["retrain", "further"] and settings["removal_estimator"] == "trak"
    assert "cache_dir" not in settings and "progress" not in settings
