"""Tests for minifer.folding: batch-norm folded into the layer before it gives the same outputs."""
import numpy as np

from minifer import zoo
from minifer.folding import fold_batchnorm
from minifer.layers import BatchNorm1d, BatchNorm2d, Conv2d, Dense, Flatten, ReLU
from minifer.model import Ensemble, Sequential


def _trained_looking(model, seed=0):
    """Give every batch-norm non-trivial statistics and affine parameters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, (BatchNorm1d, BatchNorm2d)):
            c = layer.num_features
            layer.params["gamma"].data = rng.uniform(0.5, 2.0, c).astype(np.float32)
            layer.params["beta"].data = rng.normal(0, 0.5, c).astype(np.float32)
            layer.buffers["running_mean"] = rng.normal(0, 0.5, c).astype(np.float32)
            layer.buffers["running_var"] = rng.uniform(0.2, 3.0, c).astype(np.float32)
    return model


def test_minivgg_folded_gives_the_same_outputs():
    model = _trained_looking(zoo.minivgg(seed=0))
    x = np.random.default_rng(1).standard_normal((5, 48, 48, 1), dtype=np.float32)
    want = model.eval().forward(x)
    folded = fold_batchnorm(model)
    kinds = [type(l).__name__ for l in folded.layers]
    assert "BatchNorm2d" not in kinds and "BatchNorm1d" not in kinds
    assert len(folded.layers) == len(model.layers) - 7             # 6 conv + 1 dense batch-norms
    np.testing.assert_allclose(folded.forward(x), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(folded.predict_proba(x), model.predict_proba(x), atol=1e-5)
    assert any(isinstance(l, BatchNorm2d) for l in model.layers)  # the original is untouched
    np.testing.assert_array_equal(model.forward(x), want)


def test_biased_layers_and_layers_without_a_batchnorm():
    rng = np.random.default_rng(2)
    model = Sequential([Conv2d(3, 4, 3, padding=1, bias=True, rng=rng), BatchNorm2d(4), ReLU(),
                        Conv2d(4, 4, 3, bias=True, rng=rng),                 # no batch-norm after
                        Flatten(), Dense(4 * 6 * 6, 5, bias=False, rng=rng), BatchNorm1d(5)])
    _trained_looking(model, seed=3)
    model.layers[0].params["b"].data = rng.normal(0, 1, 4).astype(np.float32)
    x = rng.standard_normal((2, 8, 8, 3), dtype=np.float32)
    folded = fold_batchnorm(model)
    assert [type(l).__name__ for l in folded.layers] == ["Conv2d", "ReLU", "Conv2d", "Flatten", "Dense"]
    assert folded.layers[-1].bias and not model.layers[-2].bias
    np.testing.assert_allclose(folded.forward(x), model.eval().forward(x), rtol=1e-4, atol=1e-4)


def test_ensemble_members_are_folded():
    members = [_trained_looking(zoo.minivgg(seed=s), seed=s) for s in (0, 1)]
    for m in members:
        m.meta.setdefault("classes", [str(i) for i in range(7)])
    ens = Ensemble(members)
    x = np.random.default_rng(4).standard_normal((3, 48, 48, 1), dtype=np.float32)
    folded = fold_batchnorm(ens)
    np.testing.assert_allclose(folded.predict_proba(x), ens.predict_proba(x), atol=1e-5)
    assert sum(isinstance(l, (BatchNorm1d, BatchNorm2d)) for l in ens.members[0].layers) == 7
