"""The ``harness`` command. Each subcommand lives in ``harness/commands/<name>.py`` and
exposes a click command named ``command``; they are listed in ``COMMANDS`` and imported
lazily so ``harness --help`` stays fast and one broken module cannot hide the others.

``HarnessError`` from any command becomes its message on stderr and its exit code; no
traceback for bad input.
"""

from __future__ import annotations

import importlib
import sys

import click

from harness import __version__
from harness.errors import HarnessError

# subcommand name -> module under harness.commands
COMMANDS = {
    "import": "import_",
    "export": "export",
    "inspect": "inspect",
    "replay": "replay",
    "show": "show",
    "serve": "serve",
    "diff": "diff",
    "record": "record",
    "check": "check",
    "simulate": "simulate",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        mod = COMMANDS.get(name)
        if mod is None:
            return None
        return importlib.import_module(f"harness.commands.{mod}").command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harness")
def cli():
    """Record, replay and check Kalshi and BTC spot exchange WebSocket traffic."""


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except HarnessError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(0)
