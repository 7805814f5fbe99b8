"""Encore launch: Launchpad's programming model on Python 3.11 (`import launch as lp`).

Importing this package does not import TensorFlow or Reverb; ReverbNode imports them when it
runs.
"""

from launch import _flags  # Defines --lp_launch_type and --lp_termination_notice_secs.
from launch._batching import batched_handler
from launch._controller import Controller, LaunchError, NodeError
from launch._courier import CourierClient, RemoteError
from launch._handles import Handle
from launch._launch import launch
from launch._launch_types import LAUNCH_TYPES, LaunchType
from launch._nodes import CourierNode, MultiThreadingColocation, Node, PyClassNode, PyNode, ReverbNode
from launch._program import Program, make_program
from launch._stop import register_stop_handler, stop, stop_event, wait_for_stop

del _flags

__all__ = [
    "batched_handler",
    "Controller",
    "CourierClient",
    "CourierNode",
    "Handle",
    "launch",
    "LAUNCH_TYPES",
    "LaunchError",
    "LaunchType",
    "make_program",
    "MultiThreadingColocation",
    "Node",
    "NodeError",
    "Program",
    "PyClassNode",
    "PyNode",
    "register_stop_handler",
    "RemoteError",
    "ReverbNode",
    "stop",
    "stop_event",
    "wait_for_stop",
]
