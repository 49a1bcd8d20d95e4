"""Classification labels as they come in a JSON-lines file: a name ("positive") or an index (3).

Anything else is refused rather than guessed at: str(None) would make a class "None",
str(1.0) a class "1.0" apart from "1", and True would quietly become class 1.
"""

from __future__ import annotations

import json

_JSON_KIND = {dict: "an object", list: "a list", type(None): "null", bool: "a boolean", float: "a number"}


def parse_label(value, path, line: int) -> str:
    """A label's name: a non-empty string as it is, an integer as its digits (3 -> "3").

    path, line: where the value was read, for the error message.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):  # bool is a subclass of int
        kind = _JSON_KIND.get(type(value), type(value).__name__)
        written = json.dumps(value, ensure_ascii=False)
        written = written if len(written) <= 40 else written[:37] + "..."
        raise ValueError(f"{path}:{line}: 'label' must be a string or an integer, got {kind} ({written})")
    if value == "":
        raise ValueError(f"{path}:{line}: 'label' is empty; give a name or an integer")
    return str(value)
