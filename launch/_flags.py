"""Launchpad's absl flags, honoured when the launching program parses absl flags."""

import os
import sys
from typing import List

from absl import flags, logging

from launch._launch_types import LAUNCH_TYPES

DEFAULT_LAUNCH_TYPE = "local_mt"
DEFAULT_TERMINATION_NOTICE_SECS = 10

if "lp_launch_type" not in flags.FLAGS:
    flags.DEFINE_enum(
        "lp_launch_type",
        DEFAULT_LAUNCH_TYPE,
        LAUNCH_TYPES,
        "How launch() runs a program when its launch_type is not given.",
    )
if "lp_termination_notice_secs" not in flags.FLAGS:
    flags.DEFINE_integer(
        "lp_termination_notice_secs",
        DEFAULT_TERMINATION_NOTICE_SECS,
        "Seconds nodes get to stop after a stop request before they are killed.",
    )


def _value(name: str, default):
    return flags.FLAGS[name].value if flags.FLAGS.is_parsed() else default


def launch_type() -> str:
    return _value("lp_launch_type", DEFAULT_LAUNCH_TYPE)


def termination_notice_secs() -> float:
    return _value("lp_termination_notice_secs", DEFAULT_TERMINATION_NOTICE_SECS)


# How node processes receive the launcher's command-line flags (those starting with '-'), one a line.
LAUNCHER_FLAGS_ENV = "ENCORE_LAUNCH_FLAGS"


def launcher_flags() -> str:
    """The launching program's flags, for its nodes to parse (empty unless it parsed absl flags)."""
    return "\n".join(a for a in sys.argv[1:] if a.startswith("-")) if flags.FLAGS.is_parsed() else ""


def launcher_flags_from_env() -> List[str]:
    return [f for f in os.environ.get(LAUNCHER_FLAGS_ENV, "").split("\n") if f]


def parse_known(argv: List[str]) -> List[str]:
    """Parses the flags of `argv` this process defines, like Launchpad's node entry points; returns the rest."""
    return flags.FLAGS(argv, known_only=True)


def parse_known_and_log(argv: List[str]) -> None:
    """parse_known(argv), then absl logging at INFO unless --verbosity says otherwise, as absl's app.run sets up."""
    parse_known(argv)
    if flags.FLAGS["verbosity"].using_default_value:
        flags.FLAGS.verbosity = 0
    logging.use_absl_handler()
