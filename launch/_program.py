"""Program: a graph of labelled node groups, as in Launchpad."""

import contextlib
import itertools
from typing import Any, Dict, Iterator, List, Optional

from launch import _nodes


class Program:
    """A distributed program: groups of nodes, wired together by the handles they receive."""

    def __init__(self, name: str):
        self._name = name
        self._groups: Dict[str, List[_nodes.Node]] = {}
        self._current_group: Optional[str] = None
        self._current_max_restarts = 0
        self._current_imports_tensorflow = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def groups(self) -> Dict[str, List[_nodes.Node]]:
        return self._groups

    def get_all_nodes(self) -> List[_nodes.Node]:
        return list(itertools.chain(*self._groups.values()))

    @contextlib.contextmanager
    def group(self, label: str, *, max_restarts: int = 0, imports_tensorflow: bool = False) -> Iterator[None]:
        """Nodes added inside share `label`; `max_restarts` and `imports_tensorflow` apply to each of them."""
        if not label:
            raise ValueError("A group needs a non-empty label.")
        if self._current_group:
            raise ValueError(f"group({label!r}) inside group({self._current_group!r}): groups cannot be nested.")
        self._current_group, self._current_max_restarts = label, max_restarts
        self._current_imports_tensorflow = imports_tensorflow
        try:
            yield
        finally:
            self._current_group, self._current_max_restarts, self._current_imports_tensorflow = None, 0, False

    def add_node(
        self,
        node: _nodes.Node,
        label: Optional[str] = None,
        *,
        max_restarts: Optional[int] = None,
        imports_tensorflow: Optional[bool] = None,
    ) -> Any:
        """Adds `node` under `label` (or the current group) and returns its handle.

        `max_restarts`: how many times the node is started again after it fails (a restarted
        node keeps its address, so handles held by other nodes keep working).
        `imports_tensorflow`: the node imports TensorFlow when it runs, e.g. inside its constructor. local_mp then
        forks it from the process that imported TensorFlow once instead of letting it import TensorFlow itself
        (seconds, and several nodes importing at once slow each other down). Replay nodes and nodes given a replay
        handle need not say so: launch() sees them.
        """
        if not isinstance(node, _nodes.Node):
            raise TypeError(f"add_node() takes a node (PyNode, CourierNode, ...), got {node!r}.")
        if node.label is not None:
            raise ValueError(f"Node {node.name} was already added to a program.")
        if self._current_group:
            if label and label != self._current_group:
                raise ValueError(
                    f"Label {label!r} does not match the current group "
                    f"{self._current_group!r}; omit it inside program.group()."
                )
            label = self._current_group
        elif not label:
            raise ValueError(
                "add_node() needs a label outside program.group(), e.g. program.add_node(node, label='learner')."
            )
        if "/" in label:
            raise ValueError(f"Label {label!r} may not contain '/'.")
        group = self._groups.setdefault(label, [])
        node.label, node.index = label, len(group)
        node.max_restarts = self._current_max_restarts if max_restarts is None else max_restarts
        node.imports_tensorflow = self._current_imports_tensorflow if imports_tensorflow is None else imports_tensorflow
        if node.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {node.max_restarts}.")
        if isinstance(node, _nodes.MultiThreadingColocation):
            for position, inner in enumerate(node.nodes):
                inner.label, inner.index = label, f"{node.index}.{position}"
        group.append(node)
        return node.create_handle()


def make_program(*nodes: _nodes.Node, name: str = "launch") -> Program:
    """A program of the given nodes, each in group 'node' (for one-line launches)."""
    program = Program(name)
    for node in nodes:
        program.add_node(node, label="node")
    return program
