"""Tests for minifer.folding: batch-norm folded into the layer before it gives the same outputs."""
import numpy as np

from minifer import backend, zoo
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


def test_eval_mode_folds_by_itself_and_keeps_it_while_the_weights_stay():
    """``model.eval(); model.forward(x)`` runs the folded network (the same layers as
    ``fold_batchnorm``'s), keeps it from call to call, and folds again when the weights change."""
    from minifer import optim
    from minifer.layers import SoftmaxCrossEntropy
    model = _trained_looking(zoo.minivgg(seed=0))
    x = np.random.default_rng(1).standard_normal((3, 48, 48, 1), dtype=np.float32)
    out = model.eval().forward(x)
    plan = model._plan()
    assert [type(l).__name__ for l, _ in plan] == [type(l).__name__ for l in fold_batchnorm(model).layers
                                                   if type(l).__name__ != "ReLU"]
    np.testing.assert_allclose(out, fold_batchnorm(model).forward(x), rtol=1e-6, atol=1e-6)
    model.forward(x)
    assert model._plan()[0][0] is plan[0][0]                      # kept while nothing changed
    w = model.layers[0].params["W"]
    w.data = w.data * 2                                           # a new array: folded again
    assert model._plan()[0][0] is not plan[0][0]
    np.testing.assert_allclose(model.forward(x), fold_batchnorm(model).forward(x), rtol=1e-6, atol=1e-6)
    model.train()                                                 # a training step: running stats and
    loss, opt = SoftmaxCrossEntropy(), optim.SGD(model.params(), lr=0.1)   # weights change in place
    loss(model.forward(x), np.array([0, 1, 2]))
    model.backward(loss.backward())
    opt.step()
    assert model._folded is None
    np.testing.assert_allclose(model.eval().forward(x), fold_batchnorm(model).forward(x), rtol=1e-6, atol=1e-6)
    state = {k: v * 0.5 for k, v in model.state_dict().items()}
    model.load_state_dict(state)                                  # loading replaces the arrays
    np.testing.assert_allclose(model.forward(x), fold_batchnorm(model).forward(x), rtol=1e-6, atol=1e-6)


def test_eval_mode_gradients_are_the_unfolded_networks():
    """A gradient check in evaluation mode: the parameters change in place between calls, and the
    backward pass after a folded forward runs the layers' own forward again."""
    from minifer.gradcheck import check_model
    from minifer.layers import SoftmaxCrossEntropy
    rng = np.random.default_rng(5)
    model = Sequential([Conv2d(1, 8, 3, padding=1, bias=False, rng=rng), BatchNorm2d(8), ReLU(),
                        Conv2d(8, 8, 3, padding=1, rng=rng), BatchNorm2d(8), ReLU(),     # Winograd
                        Flatten(), Dense(8 * 6 * 6, 4, rng=rng), BatchNorm1d(4)])
    _trained_looking(model, seed=6).eval()
    errs = check_model(model, rng.standard_normal((2, 6, 6, 1)), np.array([0, 3]), SoftmaxCrossEntropy(),
                       max_checks=6)
    assert max(errs.values()) < 1e-5, errs


def test_eval_mode_runs_large_batches_in_sub_batches(monkeypatch):
    """A batch larger than ``EVAL_CHUNK_BYTES`` of activations runs through the whole network in
    sub-batches: the same outputs, no layer cache kept, and backward still gives the gradients of
    the unfolded network."""
    from minifer import model as model_module
    model = _trained_looking(zoo.minivgg(seed=0)).eval()
    x = np.random.default_rng(7).standard_normal((5, 48, 48, 1), dtype=np.float32)
    whole = model.forward(x)
    monkeypatch.setattr(model_module, "EVAL_CHUNK_BYTES", 2 * 48 * 48 * 32 * 4)   # two images a slice
    backend.set_workers(2)
    try:   # three slices of two images at most -> four, one per worker in turn, of about equal size
        assert [len(range(5)[s]) for s in model._sub_batches(x)] == [1, 1, 1, 2]
        np.testing.assert_allclose(model.forward(x), whole, rtol=1e-4, atol=1e-4)   # GEMMs of other sizes
    finally:
        backend.set_workers(None)
    assert all(layer.cache is None for layer in model.layers)
    d = np.random.default_rng(8).standard_normal(whole.shape).astype(np.float32)
    dx = model.backward(d, input_grad=True)
    plain = _trained_looking(zoo.minivgg(seed=0)).eval()
    z = x
    for layer in plain.layers:
        z = layer.forward(z)
    for layer in reversed(plain.layers):
        d = layer.backward(d)
    np.testing.assert_allclose(dx, d, rtol=1e-4, atol=1e-5)
