"""The `bcfl` command: one typer app, one module per subcommand group, errors handled here.

Each subcommand module exposes `register(app)`; any `BcflError` (or a broken pipe / Ctrl-C)
becomes one clean line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from bcfl.errors import BcflError

app = typer.Typer(
    name="bcfl",
    help="Blockchain-backed, asynchronous, peer-to-peer federated fine-tuning of LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _registrars() -> list[Callable[[typer.Typer], None]]:
    # Imported lazily so `bcfl --help` does not pay for torch unless a command needs it.
    from bcfl.cli import commands

    return commands.REGISTRARS


def main(argv: list[str] | None = None) -> int:
    for register in _registrars():
        register(app)
    try:
        app(args=argv, standalone_mode=False)
    except BcflError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer/click exit paths (e.g. --help)
        return int(exc.code or 0)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            print("error: aborted", file=sys.stderr)
            return 1
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
