"""Judge rationales: the templated writer and the answer-leak check."""

import pytest

from hipo import template
from hipo.data.rationale import user_message
from hipo.tasks.rationale import RationaleRequest, TemplateRationaleWriter, leaks_answer


@pytest.mark.parametrize(
    ("text", "answer", "leaks"),
    [
        ("The sum is 112, easy.", "112", True),
        ("It needs 3 carries.", "3", True),
        ("Only two digits; no carries.", "3", False),
        ("Three-digit operands like 1123 need care.", "112", False),
        ("The value 2.5 is not it", "2", False),
        ("the answer is \\frac{1}{2}.", "\\frac{1}{2}", True),
        ("anything", "  ", False),
        ("right 100% of the time", "100", False),
    ],
)
def test_leaks_answer(text, answer, leaks):
    assert leaks_answer(text, answer) is leaks


@pytest.mark.parametrize(
    ("mode", "p_on", "p_off"), [("off", 1.0, 1.0), ("off", 0.875, 0.8), ("on", 1.0, 0.25)]
)
def test_template_rationales_fit_the_format_and_never_leak(mode, p_on, p_off):
    request = RationaleRequest("q", "What is 40 + 60?", mode, p_on, p_off, 8, "100")
    text = TemplateRationaleWriter().write([request])[0]
    assert not leaks_answer(text, "100")
    assert text == ("easy" if mode == "off" else "hard")  # the verdict only: one token for the tiny model
    rendered = template.render(mode, text, "100", "40+60=100" if mode == "on" else None)
    assert template.parse(rendered).judge == text


def test_user_message_carries_the_evidence_but_not_the_answer():
    message = user_message(RationaleRequest("q", "What is 40 + 65?", "on", 1.0, 0.25, 8, "105"))
    assert "What is 40 + 65?" in message and "Think-on" in message and "25%" in message
    assert "105" not in message
