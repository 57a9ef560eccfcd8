"""``python -m minifer.serve``: the live camera page and the JSON API on a local port (see --help).

The command line parses options, loads the model and hands the application
(:func:`minifer.fer.server.make_app`) to uvicorn. Exit status: 0 after Ctrl-C, 2 for a usage
error, unusable weights, or an address or port it cannot listen on (one line on stderr).
"""
import argparse
import socket
import sys

from . import _version, backend
from .fer.catalog import add_model_options
from .fer.faces import THRESHOLD, quiet_opencv
from .fer.predictor import PredictorError

PROG = "minifer.serve"


def build_parser():
    """The argument parser (its --help is the manual)."""
    p = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description="Serve the live camera page (GET /) and the JSON API (POST /api/predict, "
                    "GET /api/health, GET /api/model).",
        epilog="example: python -m minifer.serve --port 8000, then open http://127.0.0.1:8000/")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; "
                        "0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_model_options(p)
    p.add_argument("--threshold", type=float, default=THRESHOLD, metavar="T",
                   help=f"face-detector score threshold (default {THRESHOLD})")
    p.add_argument("--max-mb", type=float, default=20.0, metavar="MB",
                   help="largest request body accepted, in MB (default 20)")
    p.add_argument("--log-level", default="warning",
                   choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default warning; info logs every request)")
    _version.add_version_option(p)
    return p


def main(argv=None):
    """Run the server until Ctrl-C; returns the exit status."""
    quiet_opencv()
    args = build_parser().parse_args(argv)
    err = f"{PROG}: error: "
    if not 0.0 < args.threshold < 1.0 or args.max_mb <= 0 or not 0 < args.port < 65536:
        print(f"{err}--threshold must be in (0, 1), --max-mb > 0, --port in 1..65535", file=sys.stderr)
        return 2
    try:
        import uvicorn
        from .fer.server import EmotionService, make_app
        service = EmotionService(args.weights, threshold=args.threshold, model=args.model)
    except ImportError as e:
        print(f"{err}the server needs starlette and uvicorn ({e}): pip install minifer", file=sys.stderr)
        return 2
    except PredictorError as e:
        print(f"{err}{e}", file=sys.stderr)
        return 2
    backend.set_blas_threads(1)   # one frame at a time; leaves a core to decoding and detection
    if args.host in ("0.0.0.0", "::"):
        print(f"{PROG}: warning: listening on all interfaces ({args.host}): anyone on the network "
              "can send images to this server", file=sys.stderr)
    try:  # a taken port or a bad address: one line, before uvicorn logs its own
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.socket(family) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((args.host, args.port))
    except OSError as e:
        print(f"{err}cannot listen on {args.host}:{args.port} ({e.strerror or e})", file=sys.stderr)
        return 2
    app = make_app(service, max_bytes=int(args.max_mb * 2**20))
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
    server = uvicorn.Server(config)
    print(f"{PROG}: serving http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):   # uvicorn exits when it cannot start
        pass
    if not server.started:      # uvicorn has logged why
        print(f"{err}cannot serve on {args.host}:{args.port}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
