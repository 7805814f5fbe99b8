"""Handles: references to nodes that become clients inside the node that receives them."""

from typing import Any

import tree


class Handle:
    """A reference to a node, given by `program.add_node`; dereferenced inside receiving nodes."""

    def __init__(self, node: Any):
        self._node = node

    def dereference(self) -> Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(
            f"{type(self).__name__}.{name}: a handle is not a client. Pass it to another node "
            "(in its constructor arguments) to receive a client there, or call .dereference() "
            "after launch()."
        )


class NoClientHandle(Handle):
    """Handle of a node that serves nothing (PyNode, PyClassNode): passing it is an error."""

    def dereference(self) -> Any:
        raise TypeError(
            f"Node {self._node.name!r} serves no RPC, so its handle has no client; use a CourierNode to call it."
        )


class CourierHandle(Handle):
    def dereference(self) -> Any:
        from launch import _context, _courier

        node = self._node
        runtime = _context.current_or_none()
        source = runtime.address_source(node.name) if runtime is not None else None
        return _courier.CourierClient(node.address, label=node.name, address_source=source, **node.client_kwargs)


class ReverbHandle(Handle):
    def dereference(self) -> Any:
        # Imported here so that `import launch` does not import TensorFlow.
        import replay

        replay.import_tensorflow()  # Before Reverb imports it: without TensorFlow's CPU-only plugin noise.
        import reverb

        from launch import _context, _courier

        node = self._node
        runtime = _context.current_or_none()
        if runtime is not None and runtime.address_source(node.name) is not None:
            return reverb.Client(runtime.wait_for_address(node.name, _courier.DEFAULT_CONNECT_TIMEOUT_SECS))
        return reverb.Client(node.address)


def dereference_nest(nest: Any) -> Any:
    """Replaces every handle inside `nest` (lists, tuples, dicts, ...) by its client."""
    return tree.map_structure(lambda x: x.dereference() if isinstance(x, Handle) else x, nest)
