"""`--config key=value` overrides of an agent's config dataclass, with errors that name the field."""

import dataclasses
import typing
from typing import Any, Dict, Sequence


def parse_overrides(config_class: type, overrides: Sequence[str]) -> Dict[str, Any]:
    """{field: value} from "key=value" strings, each value parsed as the field's annotated type.

    Raises ValueError naming the unknown key (with the valid keys) or the field and its expected type.
    """
    hints = typing.get_type_hints(config_class)
    fields = [field.name for field in dataclasses.fields(config_class)]
    values: Dict[str, Any] = {}
    for override in overrides:
        key, separator, text = override.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ValueError(f"--config {override!r} is not key=value (e.g. --config learning_rate=1e-3).")
        if key not in fields:
            raise ValueError(
                f"--config {key}: {config_class.__name__} has no field {key!r}; the fields are: {', '.join(fields)}."
            )
        values[key] = _parse(key, text.strip(), hints[key])
    return values


def _parse(key: str, text: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Union and len(arguments) == 2 and type(None) in arguments:  # Optional[X]: X or "none".
        if text.lower() == "none":
            return None
        return _parse(key, text, next(a for a in arguments if a is not type(None)))
    if origin is tuple:
        element_type = typing.get_args(annotation)[0]
        parts = [part for part in text.replace(" ", "").split(",") if part]
        return tuple(_parse(key, part, element_type) for part in parts)
    if annotation is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"--config {key}={text}: expected a bool (true or false).")
    if annotation in (int, float, str):
        try:
            return annotation(text)
        except ValueError:
            raise ValueError(f"--config {key}={text}: expected {_describe(annotation)}.") from None
    raise ValueError(f"--config {key}: fields of type {annotation} cannot be set from the command line.")


def _describe(annotation: Any) -> str:
    return {int: "an int (e.g. 64)", float: "a float (e.g. 1e-3)", str: "a string"}[annotation]
