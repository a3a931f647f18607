"""runtime/kernel/lean/jsonfast.py against the json package: same output, same verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fresh_interpreter import run_fresh
from dockyard.runtime.kernel.lean import jsonfast

VALUES = [
    None, True, False, 0, -1, 2**70, 1.5, -0.0, 1e300, "", "plain", "tab\tquote\"back\\slash",
    "ünïcødé ☃ \U0001f600", "\x00\x1f", [], {}, [1, [2, [3, {}]]],
    {"ociVersion": "1.2.0", "process": {"args": ["sh", "-c", "echo hi"], "env": ["A=1"]},
     "linux": {"resources": {"memory": {"limit": 1 << 30}}, "uidMappings": [{"containerID": 0, "size": 1}]}},
    {"b": 1, "a": [None, True, 1.25]},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_dumps_is_json_dumps(value: object) -> None:
    assert jsonfast.dumps(value) == json.dumps(value)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_loads_round_trips(value: object) -> None:
    text = json.dumps(value)
    assert jsonfast.loads(text) == json.loads(text)
    assert jsonfast.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [math.inf, {"x": -math.inf}]], ids=repr)
def test_non_finite_floats_as_json_writes_them(value: object) -> None:
    assert jsonfast.dumps(value) == json.dumps(value)
    assert jsonfast.dumps(jsonfast.loads(json.dumps(value))) == json.dumps(value)


@pytest.mark.parametrize("text", [
    "  {\"a\": 1}  ", "\n[1,2]\r\n", "\t\"s\"", "1", "-2.5e3", "true", "null", "NaN", "\ufeff".encode() + b"[1]",
])
def test_accepts_what_json_accepts(text: str | bytes) -> None:
    result = jsonfast.loads(text)
    expected = json.loads(text)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(result)
    else:
        assert result == expected


@pytest.mark.parametrize("text", [
    "", "   ", "{", "[1,]", "{\"a\":1,}", "{'a': 1}", "[1] [2]", "1 x", "tru", "\"unterminated",
    "\"ctrl\x01char\"", "01", "\ufeff[1]", "{\"a\" 1}", "[1,,2]",
])
def test_rejects_what_json_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsonfast.loads(text)


def test_unserializable_names_the_type_and_leaves_no_state_behind() -> None:
    with pytest.raises(TypeError, match="set"):
        jsonfast.dumps({"a": [1, {2}]})
    assert jsonfast.dumps({"a": [1]}) == '{"a": [1]}'  # a failed encoding leaves no stale cycle marker


def test_circular_reference_is_an_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        jsonfast.dumps(loop)


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"id": "c1"}\n')
    assert jsonfast.load_file(str(path)) == {"id": "c1"}


def test_importing_it_imports_neither_json_nor_re() -> None:
    out = run_fresh("from dockyard.runtime.kernel.lean import jsonfast; jsonfast.loads(jsonfast.dumps({'a': [1]}))\n"
                    "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))")
    assert out.strip() == "[]"


@pytest.mark.parametrize("indent", [2, 4, "\t", 0])
@pytest.mark.parametrize("value", [*VALUES, {"a": {}, "b": [], "c": [{"d": [1, {}]}]}, {1: "int key", 2.5: None}],
                         ids=repr)
def test_indented_dumps_is_json_dumps(value: object, indent: int | str) -> None:
    assert jsonfast.dumps(value, indent=indent) == json.dumps(value, indent=indent)


def test_indented_circular_reference_is_an_error() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    with pytest.raises(ValueError):
        jsonfast.dumps(loop, indent=2)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_compact_dumps_is_json_dumps_with_tight_separators(value: object) -> None:
    assert jsonfast.dumps(value, compact=True) == json.dumps(value, separators=(",", ":"))
