"""The ``kever`` command: a small click CLI over the library API.

Subcommands live beside the code they drive and are imported only when used, so
``kever --help`` stays fast. A :class:`~kever.errors.KeverError` is printed as one line
(what was wrong, what to do) with a non-zero exit; anything else is reported as a bug.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from kever import __version__
from kever.errors import KeverError

#: name -> ("module:attribute" of a click command or group, one-line help).
COMMANDS = {
    "perceive": ("kever.tools.perception.cli:perceive", "Measure an image's visual cues (colour, faces, objects, text)."),
    "kb": ("kever.tools.kb.cli:kb", "Build, search and inspect the affective knowledge base."),
    "explain": ("kever.agent.cli:explain", "Say which emotion an image evokes, and why."),
    "models": ("kever.agent.cli:models", "List presets and models; pull weights."),
    "eval": ("kever.evals.cli:eval_group", "Evaluate over benchmark splits; rescore and compare runs."),
    "serve": ("kever.serve.cli:serve", "Serve an OpenAI-compatible chat API."),
    "index": ("kever.search.cli:index", "Judge a folder of photos into a searchable index (incremental)."),
    "search": ("kever.search.cli:search", "Search an index by emotion, text, example photo or valence/arousal."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target[0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kever")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """kever: which emotion does an image evoke, and why."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def fail(message: str, code: int = 2) -> "NoReturn":  # noqa: F821
    click.echo(f"kever: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning OpenMP threads on shared CPUs
    try:
        cli.main(args=argv, prog_name="kever", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeverError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:  # a bug, not a user mistake: one line unless asked for more
        if os.environ.get("KEVER_DEBUG"):
            raise
        fail(f"internal error: {type(e).__name__}: {e} (a bug in kever; set KEVER_DEBUG=1 for the traceback)", 1)


if __name__ == "__main__":
    main()
