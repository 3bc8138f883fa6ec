"""Whatever the file holds, reading it gives the model or a ``SpecError``: never anything else.

Documents are built from the models' own keys and values (so they get deep into the
models) mixed with random ones, written as TOML; some are then damaged byte-wise.
"""

from __future__ import annotations

import datetime
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.errors import SpecError
from server.spec.app_spec import AppSpec
from server.spec.files import read_model
from server.spec.release_spec import ReleaseSpec
from server.spec.sys_config import read_sys_config

KEYS = [
    "name", "vsn", "description", "modules", "registered", "applications", "mod", "module",
    "args", "env", "appup", "up", "down", "instructions", "op", "vsn_regex", "change", "extra",
    "timeout", "mod_type", "dep_mods", "pre_purge", "post_purge", "supervisor", "function",
    "application", "type", "runtime", "node", "log_level", "heart_max_restarts",
    "heart_period", "release", "control_socket", "apps_dir", "counter",
]  # fmt: skip
WORDS = [
    "update", "load_module", "add_module", "delete_module", "apply", "add_application",
    "remove_application", "restart_application", "soft", "advanced", "static", "dynamic",
    "brutal_purge", "soft_purge", "permanent", "transient", "temporary", "load", "none",
    "INFO", "DEBUG", "counter", "counter.app", "1.0.0", "1\\.0\\..*", "(", "", "a-b",
]  # fmt: skip

keys = st.sampled_from(KEYS) | st.text(max_size=8)
scalars = (
    st.sampled_from(WORDS)
    | st.text(max_size=12)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.datetimes(max_value=datetime.datetime(9999, 1, 1))
    | st.dates()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)
documents = st.dictionaries(keys, values, max_size=8)


def toml_key(key: str) -> str:
    return json.dumps(key)


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(document: dict[str, object]) -> str:
    return "".join(f"{toml_key(key)} = {toml_value(value)}\n" for key, value in document.items())


def damaged(text: str, cut: int, junk: bytes) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    where = cut % (len(data) + 1)
    return data[:where] + junk + data[where:]


READERS: list[pytest.ParameterSet] = [
    pytest.param(lambda path: read_model(AppSpec, path), id="app_spec"),
    pytest.param(lambda path: read_model(ReleaseSpec, path), id="release_spec"),
    pytest.param(read_sys_config, id="sys_config"),
]

Reader = Callable[[Path], pydantic.BaseModel]


def only_spec_errors(reader: Reader, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "spec.toml"
        path.write_bytes(data)
        failure: SpecError | None = None
        try:
            reader(path)
        except SpecError as error:
            failure = error
        if failure is not None:
            assert failure.path == str(path)
            assert failure.problems


@pytest.mark.parametrize("reader", READERS)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents, cut=st.integers(min_value=0), junk=st.binary(max_size=4))
def test_reading_any_document_gives_the_model_or_a_spec_error(
    reader: Reader, document: dict[str, object], cut: int, junk: bytes
) -> None:
    text = toml_document(document)
    only_spec_errors(reader, text.encode("utf-8", "surrogatepass"))
    only_spec_errors(reader, damaged(text, cut, junk))


@pytest.mark.parametrize("reader", READERS)
@settings(max_examples=40, deadline=None)
@given(
    fields=st.dictionaries(st.sampled_from(KEYS), values, max_size=6),
    name=st.sampled_from(["counter", "demo", "Bad", ""]) | st.text(max_size=6),
)
def test_random_field_values_on_a_plausible_base_give_the_model_or_a_spec_error(
    reader: Reader, fields: dict[str, object], name: str
) -> None:
    base: dict[str, object] = {
        "name": name,
        "vsn": "1.0.0",
        "applications": [{"name": "counter", "vsn": "1.0"}],
        "node": {"name": name},
    }
    only_spec_errors(reader, toml_document({**base, **fields}).encode("utf-8", "surrogatepass"))
