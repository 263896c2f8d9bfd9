"""Which workflow ids the API takes: 1-128 of ``A-Za-z0-9_.:-`` with a letter or digit."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter, ValidationError

from service.api.schemas import WORKFLOW_ID_MAX_LENGTH, WORKFLOW_ID_PATTERN, WorkflowId

_ADAPTER: TypeAdapter[str] = TypeAdapter(WorkflowId)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("wf_1696291234", True),
        ("a", True),
        ("7", True),
        ("..1", True),
        ("-a-", True),
        ("tenant:run.2", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        (".", False),
        ("..", False),
        ("---", False),
        ("_:.-", False),
        ("wf 1", False),
        ("wf/1", False),
        ("é", False),
    ],
)
def test_workflow_id_needs_a_letter_or_digit(value: str, valid: bool) -> None:
    # the model and the published pattern (plus maxLength) agree on every case
    try:
        _ADAPTER.validate_python(value)
        accepted = True
    except ValidationError:
        accepted = False
    published = (
        re.fullmatch(WORKFLOW_ID_PATTERN, value) is not None
        and len(value) <= WORKFLOW_ID_MAX_LENGTH
    )
    assert accepted is valid
    assert published is valid
