"""Package attributes imported on first use, so that importing an agent's numpy parts never imports TensorFlow."""

import importlib
from typing import Any, Callable, List, Mapping, Tuple


def lazy_exports(package: str, exports: Mapping[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """(__getattr__, __dir__) for `package`, whose name `n` lives in module `package.exports[n]`."""
    names = sorted(exports)

    def getattr_(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def dir_() -> List[str]:
        return names

    return getattr_, dir_
