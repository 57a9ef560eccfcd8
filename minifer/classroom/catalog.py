"""The exercises, in order: what to write, the chapter that explains it, where minifer's solution is
marked, and the checks that grade it."""
from dataclasses import dataclass

from . import layer_checks as lc
from . import training_checks as tc


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``name`` (its ``# exercise: name`` markers in ``module``), a title, the chapter
    that explains it, the task (with shapes), and its checks ``((check name, function), ...)``;
    each function takes the student's module and raises on a wrong answer."""
    name: str
    title: str
    chapter: str
    module: str
    task: str
    checks: tuple


EXERCISES = [
    Exercise("dense_backward", "the backward pass of a dense layer", "docs/02_dense_and_gradients.md",
             "minifer.layers.dense",
             "Dense.backward(dout): the forward pass computed out = x @ W + b and kept x (N, D) in\n"
             "self.cache. Given dout = dL/dout (N, F), set self.params['W'].grad (D, F) and\n"
             "self.params['b'].grad (F,), and return dx = dL/dx (N, D).",
             (("shapes", lc.dense_shapes), ("values", lc.dense_values), ("gradient check", lc.dense_gradients))),
    Exercise("relu", "ReLU, forward and backward", "docs/02_dense_and_gradients.md", "minifer.layers.activation",
             "ReLU.forward(x): max(x, 0), any shape; keep what the backward pass needs in self.cache.\n"
             "ReLU.backward(dout): dx, the gradient let through where the input was positive.",
             (("shapes", lc.relu_shapes), ("values", lc.relu_values), ("gradient check", lc.relu_gradients))),
    Exercise("softmax_cross_entropy", "softmax cross-entropy, stable, with its gradient",
             "docs/03_softmax_cross_entropy.md", "minifer.layers.loss",
             "log_softmax(z): z (N, K) -> log softmax of each row, without overflow for large logits.\n"
             "SoftmaxCrossEntropy.__call__: the code before yours made the target distribution q (N, K)\n"
             "and the per-sample weights w (N,) (1/N each, or class weights; they sum to 1). Return the\n"
             "loss -sum_n w_n sum_k q_nk log p_nk (one number) and keep what backward needs.\n"
             "SoftmaxCrossEntropy.backward(): dL/dlogits (N, K).",
             (("shapes", lc.softmax_shapes), ("values", lc.softmax_values),
              ("large logits", lc.softmax_large_logits), ("gradient check", lc.softmax_gradients))),
    Exercise("conv_forward_im2col", "convolution forward: im2col", "docs/04_convolution_im2col.md",
             "minifer.ops.reference",
             "im2col(x, kh, kw, stride, pad): x (N, H, W, C) -> cols (N*OH*OW, KH*KW*C), one row per output\n"
             "pixel holding the input values under the kernel in (kh, kw, c) order, zero padding P.\n"
             "The convolution is then one matrix multiply: cols @ W.reshape(KH*KW*C, F) + b.",
             (("shapes", lc.im2col_shapes), ("values", lc.im2col_values), ("convolution", lc.im2col_convolution))),
    Exercise("conv_backward_col2im", "convolution backward: col2im", "docs/05_backward_passes.md",
             "minifer.ops.reference",
             "col2im(cols, x_shape, kh, kw, stride, pad): cols (N*OH*OW, KH*KW*C) -> dx x_shape (N, H, W, C),\n"
             "the adjoint of im2col: every entry of cols added back onto the input pixel it was copied\n"
             "from (overlapping windows add up; padding drops out). A convolution's dx is\n"
             "col2im(dout @ W.reshape(KH*KW*C, F).T).",
             (("shapes", lc.col2im_shapes), ("values", lc.col2im_values), ("adjoint", lc.col2im_adjoint),
              ("gradient check", lc.col2im_gradients))),
    Exercise("maxpool_backward", "the backward pass of max-pooling", "docs/05_backward_passes.md",
             "minifer.ops.reference",
             "maxpool_backward(dout, arg, x_shape, k, s): dout (N, OH, OW, C) and arg (N, OH, OW, C) int32,\n"
             "the flat index h*W + w of each window's maximum in its H x W map -> dx x_shape (N, H, W, C):\n"
             "each gradient goes to the one input that won its window; windows may overlap (s < k).",
             (("shapes", lc.maxpool_shapes), ("values", lc.maxpool_values), ("gradient check", lc.maxpool_gradients))),
    Exercise("batchnorm_backward", "the backward pass of batch-norm, training mode", "docs/05_backward_passes.md",
             "minifer.ops.reference",
             "Batch-norm over the columns of an (m, C) matrix, xhat = (x - mu) * inv.\n"
             "channel_sums(a, b, mu, inv): per column sum(a) and sum(a * (b - mu) * inv) -> (2, C) float64\n"
             "(with a = dout, b = x: dbeta and dgamma).\n"
             "bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma): training-mode dx (m, C), where mu and\n"
             "var come from the batch itself.",
             (("shapes", lc.batchnorm_shapes), ("values", lc.batchnorm_values),
              ("gradient check", lc.batchnorm_gradients))),
    Exercise("sgd_nesterov", "SGD with (Nesterov) momentum", "docs/07_optimizers_and_schedules.md", "minifer.optim",
             "SGD.update(p, g, st, lr, wd): one step for parameter p (p.data) with gradient g (weight decay\n"
             "already added). With momentum mu: v = mu * v + g (v kept in the dict st, starting from g),\n"
             "then w -= lr * (g + mu * v) with Nesterov, w -= lr * v without; no momentum: w -= lr * g.",
             (("shapes", tc.sgd_shapes), ("values", tc.sgd_values), ("learns", tc.sgd_learns))),
    Exercise("adam", "Adam", "docs/07_optimizers_and_schedules.md", "minifer.optim",
             "Adam.update(p, g, st, lr, wd): one Adam step with bias correction; self.t is the step count\n"
             "(1 at the first step), self.b1, self.b2, self.eps the constants; keep m and v in the dict st.",
             (("shapes", tc.adam_shapes), ("values", tc.adam_values), ("learns", tc.adam_learns))),
    Exercise("training_loop", "the tiny CNN's training loop", "docs/09_training_and_curves.md", "minifer.fit",
             "train_epoch(model, loss_fn, opt, x, y, batch_size, rng, transform): one epoch over the samples\n"
             "in a shuffled order (rng), batch by batch: transform (if given), forward, loss, backward,\n"
             "optimizer step -> (mean loss over the samples, accuracy). The model must be in training mode.",
             (("one epoch", tc.loop_epoch), ("mean loss and accuracy", tc.loop_returns), ("learns", tc.loop_learns))),
]
BY_NAME = {e.name: e for e in EXERCISES}


def file_name(exercise):
    """``01_dense_backward.py``: the exercise's file in a student's folder."""
    return f"{EXERCISES.index(exercise) + 1:02d}_{exercise.name}.py"


def select(names):
    """The exercises named (all for none), in order; ValueError naming an unknown one."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown exercise {unknown[0]!r}; the exercises are: {', '.join(BY_NAME)}")
    return [e for e in EXERCISES if not names or e.name in names]
