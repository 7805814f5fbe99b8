"""The files of a run directory: config, result and program descriptions."""

import dataclasses
import datetime
import json
import os
from typing import Any, Optional


def make_run_dir(run_dir: Optional[str] = None, base: str = "runs") -> str:
    """Creates and returns `run_dir`, defaulting to base/<timestamp>."""
    if run_dir is None:
        run_dir = os.path.join(base, datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f"))
    os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
    return run_dir


def write_json(path: str, data: Any) -> str:
    """Writes `data` (dataclasses allowed) as indented JSON, atomically; returns the path."""
    if dataclasses.is_dataclass(data):
        data = dataclasses.asdict(data)
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=_jsonable)
        f.write("\n")
    os.replace(temporary, path)
    return path


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
