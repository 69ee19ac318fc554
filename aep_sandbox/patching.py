"""JSON Patch (RFC 6902) for every service that takes one: Schema Registry, Catalog and Flow Service.

The ``jsonpatch`` library applies the operations, so pointers, escapes (``~0``, ``~1``), array indexes and
``-`` behave as the RFC says. Each service adds only its own rules: which operations it accepts and on
which paths (``allow``), and what it recomputes afterwards. Operation names are matched in any case, as
AEP's gateway does (aepp sends ``"Replace"``).
"""

from collections.abc import Callable
from dataclasses import dataclass

import jsonpatch
import jsonpointer


@dataclass(frozen=True)
class Operation:
    op: str  # add, remove, replace, move, copy or test, in lower case
    path: list[str]  # the pointer's reference tokens, unescaped
    value: object = None


def apply(document: dict, body, *, allow: Callable[[Operation, dict], None],
          error: Callable[[str], Exception]) -> dict:
    """A patched copy of ``document``; ``allow(operation, document)`` raises to refuse one operation, and
    every refusal or failure comes back as ``error(message)``, naming the operation and the fix."""
    if not isinstance(body, list) or not body:
        raise error('A PATCH body is a JSON Patch array, e.g. [{"op": "add", "path": "/name", "value": "x"}].')
    normalised = []
    for raw in body:
        if not isinstance(raw, dict) or not isinstance(raw.get("op"), str) or not isinstance(raw.get("path"), str):
            raise error(f"Patch operation {raw!r} needs a string 'op' and 'path'.")
        op = {**raw, "op": raw["op"].lower()}
        try:
            tokens = jsonpointer.JsonPointer(op["path"]).parts
        except jsonpointer.JsonPointerException as exc:
            raise error(f"Patch path {op['path']!r} is not a JSON pointer: {exc}.") from None
        allow(Operation(op["op"], tokens, op.get("value")), document)
        normalised.append(op)
    try:
        return jsonpatch.apply_patch(document, normalised, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise error(f"The patch could not be applied: {exc}.") from None
