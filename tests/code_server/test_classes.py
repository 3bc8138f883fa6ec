"""Classes, dataclasses and pydantic models defined in application modules."""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._helpers import App

MODELS = """
    from __future__ import annotations

    import dataclasses

    from pydantic import BaseModel

    __vsn__ = "$vsn"


    class Order(BaseModel):
        lines: list[Line]  # defined further down: pydantic completes Order lazily
        note: Note | None = None


    class Line(BaseModel):
        sku: str


    class Note(BaseModel):
        text: str


    @dataclasses.dataclass
    class Point:
        x: Coord
        y: Coord = 0


    Coord = int


    class Greeter:
        def greet(self):
            return f"hello from {__vsn__}"
"""


def test_pydantic_models_with_forward_references_to_later_models(app: App) -> None:
    app.write("models", MODELS, vsn="v1")
    models = app.import_("models")
    order = models.Order(lines=[{"sku": "a"}], note={"text": "n"})
    assert type(order.lines[0]) is models.Line
    assert type(order.note) is models.Note
    assert order.model_dump() == {"lines": [{"sku": "a"}], "note": {"text": "n"}}


def test_pydantic_models_of_a_new_version_resolve_in_that_version(app: App) -> None:
    app.write("models", MODELS, vsn="v1")
    models = app.import_("models")
    v2 = app.load("models", MODELS, vsn="v2").module
    order = models.Order(lines=[{"sku": "b"}])
    assert type(order) is v2.Order
    assert type(order.lines[0]) is v2.Line


def test_a_dataclass_with_postponed_annotations(app: App) -> None:
    app.write("models", MODELS, vsn="v1")
    models = app.import_("models")
    assert typing.get_type_hints(models.Point) == {"x": int, "y": int}
    assert [field.name for field in dataclasses.fields(models.Point)] == ["x", "y"]
    assert models.Point(1) == models.Point(1, 0)


def test_a_class_runs_the_code_of_its_own_version(app: App) -> None:
    v1 = app.first("models", MODELS, vsn="v1").module
    models = app.import_("models")
    old_greeter = models.Greeter()
    app.load("models", MODELS, vsn="v2")
    assert old_greeter.greet() == "hello from v1"
    assert models.Greeter().greet() == "hello from v2"
    assert isinstance(old_greeter, v1.Greeter)
    assert not isinstance(old_greeter, models.Greeter), "classes differ across versions"
