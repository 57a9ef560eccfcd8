"""minivgg in PyTorch, for ``python -m minifer.bench`` (prints one JSON object).

The same architecture as ``minifer.zoo.minivgg`` (NCHW, PyTorch's own layers),
the same batch sizes, SGD-Nesterov step and thread count. Lives outside the
package: minifer never imports PyTorch.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minifer.timing import median_time  # noqa: E402  (NumPy only: no Numba threads here)


def bench_torch(args, threads):
    torch.set_num_threads(threads)

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    net = nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64),
                        nn.MaxPool2d(2), *block(64, 128), *block(128, 128), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4608, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(inplace=True),
                        nn.Dropout(0.5), nn.Linear(256, 7))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    lossf = nn.CrossEntropyLoss()
    x = torch.randn(args.train_batch, 1, 48, 48)
    y = torch.randint(0, 7, (args.train_batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        lossf(net(x), y).backward()
        opt.step()
    net.train()
    res = {"version": torch.__version__}
    res["train_ips"] = args.train_batch / median_time(step, args.repeat)
    net.eval()
    xi = torch.randn(args.infer_batch, 1, 48, 48)
    with torch.no_grad():
        res["infer_ips"] = args.infer_batch / median_time(lambda: net(xi), args.repeat)
        x1 = xi[:1]
        res["latency_ms"] = 1000 * median_time(lambda: net(x1), max(20, args.repeat * 5), warmup=3)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    args = p.parse_args()
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(json.dumps(bench_torch(args, threads)))


if __name__ == "__main__":
    main()
