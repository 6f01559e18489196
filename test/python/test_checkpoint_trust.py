"""Issue 15.4: a file given as --model / --checkpoint / --weights is loaded weights-only; unpickling
Python objects (which runs code from the file) needs --trust-pickle (trust_pickle=True)."""

from __future__ import annotations

import os

import pytest
import torch

from lutham.evaluation.data import Data
from lutham.model.kan import KAN
from lutham.model.load import load_user_model


class _Evil:
    """Unpickling it runs os.system: the marker file shows whether code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"layers.0.base_weight": _Evil(marker)}, path)
    return path, marker


def _data():
    x = torch.zeros(4, 3)
    y = torch.zeros(4, dtype=torch.long)
    return Data(name="t", source="t", x_train=x, y_train=y, x_test=x, y_test=y, classes=2, key="t")


@pytest.mark.parametrize("flag", ["--model", "--checkpoint"])
def test_a_pickle_that_runs_code_is_refused_without_trust(tmp_path, flag):
    path, marker = _evil(tmp_path)
    with pytest.raises(ValueError) as e:
        if flag == "--model":
            load_user_model(str(path))
        else:
            from lutham.evaluation.train import load_checkpoint

            load_checkpoint(str(path), _data())
    msg = str(e.value)
    assert not marker.exists(), "code from the file ran"
    assert "\n" not in msg
    assert "--trust-pickle" in msg and "posix.system" in msg
    # torch's text advises weights_only=False: it must not reach the user as advice
    assert "weights_only" not in msg and "Re-running" not in msg


def test_a_pickled_module_loads_only_with_trust(tmp_path):
    path = tmp_path / "mod.pt"
    torch.save(KAN([3, 2], grid_size=4), path)
    with pytest.raises(ValueError, match=r"--model .*mod\.pt holds pickled Python objects.*--trust-pickle"):
        load_user_model(str(path))
    model = load_user_model(str(path), trust_pickle=True)
    assert isinstance(model, KAN)


def test_trust_pickle_runs_the_file_as_asked(tmp_path):
    path, marker = _evil(tmp_path)
    with pytest.raises(ValueError):  # os.system returns an int, not a tensor: refused after loading
        load_user_model(str(path), trust_pickle=True)
    assert marker.exists()


def test_weights_state_dict_loads_weights_only(tmp_path):
    model = KAN([3, 2], grid_size=4)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    loaded = load_user_model(str(tmp_path / "state.pt"))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    evil, marker = _evil(tmp_path)
    (tmp_path / "net.py").write_text("from lutham.model.kan import KAN\ndef build():\n    return KAN([3, 2], grid_size=4)\n")
    with pytest.raises(ValueError, match=r"--weights .*evil\.pt holds pickled Python objects"):
        load_user_model(f"{tmp_path / 'net.py'}:build", weights=str(evil))
    assert not marker.exists()


def test_export_weights_of_the_built_model_refuse_pickles_without_torch_advice(tmp_path):
    from lutham.model.multihead import ModelConfig, build_model

    path, marker = _evil(tmp_path)
    with pytest.raises(ValueError) as e:
        build_model(ModelConfig(backbone="none", heads=1, widths=[4, 2], grid=4, weights=str(path)))
    assert not marker.exists()
    assert "holds pickled Python objects (posix.system)" in str(e.value)
    assert "weights_only" not in str(e.value) and "Re-running" not in str(e.value)
