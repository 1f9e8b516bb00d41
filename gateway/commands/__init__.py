"""Subcommands of `fgw` beyond the core ones in `gateway.cli`, one module each.

Each module listed in `COMMAND_MODULES` has `register(subparsers)`, which adds its subcommand(s)
with `set_defaults(func=…)`; the function gets the parsed arguments and returns the exit code. The
modules are imported only to build the parser, so keep their heavy imports inside the functions.
"""

from __future__ import annotations

SITE_HELP = (
    "the site file (YAML), e.g. examples/riverside.yaml; `fgw demo` writes var/demo/site.yaml"
)
"""The description of every command's SITE argument."""

COMMAND_MODULES: list[str] = [
    "gateway.commands.report",  # fgw report alarms (alarm load, EEMUA 191)
    "gateway.commands.tickets",  # fgw tickets list|show|transition, fgw report maintenance
    "gateway.commands.accounts",  # fgw user …, fgw token … (console and API accounts)
    "gateway.commands.incidents",  # fgw drill, fgw incidents list|show (PRODUCT §11)
    "gateway.commands.operations",  # fgw report shift, fgw report energy (PRODUCT §11)
]
"""Modules adding subcommands, in the order they appear in `fgw --help`."""
