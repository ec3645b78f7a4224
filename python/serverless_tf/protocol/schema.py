"""Column schemas (``{"name", "dtype", "shape"}``, docs/protocol.md) and the reserved columns.

No TensorFlow here: the JobSpec parser validates its column lists with this module before the
worker has applied the user's environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from .errors import SchemaError

DTYPES = ("FLOAT32", "FLOAT64", "INT32", "INT64", "STRING", "BYTES")
Dtype = Literal["FLOAT32", "FLOAT64", "INT32", "INT64", "STRING", "BYTES"]
Shape = Union[Literal["scalar", "var"], "Fixed"]

#: Reserved feature: added by the feed in inference mode and copied to each output example.
ROW_ID = "__row_id"
#: Reserved feature of padded training batches: 1.0 for a real row, 0.0 for padding.
MASK = "__mask"


@dataclass(frozen=True)
class Fixed:
    """A fixed-length list shape: exactly ``n`` values."""

    fixed: int


@dataclass(frozen=True)
class Column:
    """One column of a schema: ``{"name", "dtype", "shape"}`` in JSON.

    Example:
        >>> Column("pixels", "FLOAT32", Fixed(64)).to_json()
        {'name': 'pixels', 'dtype': 'FLOAT32', 'shape': {'fixed': 64}}
    """

    name: str
    dtype: Dtype
    shape: Shape = "scalar"

    def to_json(self) -> dict[str, Any]:
        shape = {"fixed": self.shape.fixed} if isinstance(self.shape, Fixed) else self.shape
        return {"name": self.name, "dtype": self.dtype, "shape": shape}


def columns_from_json(items: list[Any]) -> list[Column]:
    """Validates a JSON column list (as in a JobSpec) into :class:`Column` objects.

    Raises:
        SchemaError: naming the column, the field, the value received and what is allowed.

    Example:
        >>> columns_from_json([{"name": "label", "dtype": "INT64", "shape": "scalar"}])
        [Column(name='label', dtype='INT64', shape='scalar')]
    """
    if not isinstance(items, list):
        raise SchemaError("<columns>", None, "a list of {name, dtype, shape}", items, "pass the column list as a JSON array")
    out: list[Column] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SchemaError(f"#{i}", None, "an object {name, dtype, shape}", item, "describe every column as an object")
        name, dtype, shape = item.get("name"), item.get("dtype"), item.get("shape")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"#{i}", None, "field name: a non-empty string", name, "give the column a name")
        if name in seen:
            raise SchemaError(name, None, "field name: unique within the column list", name, "remove or rename the duplicate column")
        seen.add(name)
        if dtype not in DTYPES:
            raise SchemaError(name, None, f"field dtype: one of {', '.join(DTYPES)}", dtype, "use one of the allowed dtypes")
        parsed: Shape
        if shape in ("scalar", "var"):
            parsed = shape
        elif (
            isinstance(shape, dict)
            and list(shape) == ["fixed"]
            and isinstance(shape["fixed"], int)
            and not isinstance(shape["fixed"], bool)
            and shape["fixed"] >= 0
        ):
            parsed = Fixed(shape["fixed"])
        else:
            raise SchemaError(name, None, 'field shape: "scalar", "var" or {"fixed": n} with n >= 0', shape, "set the column's shape to one of the allowed forms")
        out.append(Column(name, dtype, parsed))
    return out


#: The reserved ``__row_id`` column (INT64 scalar).
ROW_ID_COLUMN = Column(ROW_ID, "INT64", "scalar")
