"""The launch types: how launch() runs a program's nodes."""

import enum


class LaunchType(enum.Enum):
    TEST_MULTI_THREADING = "test_mt"
    LOCAL_MULTI_THREADING = "local_mt"
    LOCAL_MULTI_PROCESSING = "local_mp"
    RAY = "ray"


# The launch type names, for flags and command-line choices: the one list of them.
LAUNCH_TYPES = tuple(t.value for t in LaunchType)
