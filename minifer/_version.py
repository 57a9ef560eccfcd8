"""The package version: the one place it is written (pyproject.toml reads it from here)."""
__version__ = "0.1.0"


def add_version_option(parser):
    """Give a command line's ``argparse`` parser ``--version`` (prints ``<prog> <version>``)."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
