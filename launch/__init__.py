"""Encore launch: Launchpad's programming model on Python 3.11 (`import launch as lp`).

Importing this package does not import TensorFlow or Reverb; ReverbNode imports them when it
runs.
"""

from launch import _flags  # Defines --lp_launch_type and --lp_termination_notice_secs.
from launch._batching import batched_handler
from launch._controller import Controller
from launch._controller import NodeError
from launch._courier import CourierClient
from launch._courier import RemoteError
from launch._handles import Handle
from launch._launch import launch
from launch._launch_types import LAUNCH_TYPES
from launch._launch_types import LaunchType
from launch._nodes import CourierNode
from launch._nodes import MultiThreadingColocation
from launch._nodes import Node
from launch._nodes import PyClassNode
from launch._nodes import PyNode
from launch._nodes import ReverbNode
from launch._program import make_program
from launch._program import Program
from launch._stop import register_stop_handler
from launch._stop import stop
from launch._stop import stop_event
from launch._stop import wait_for_stop

del _flags
