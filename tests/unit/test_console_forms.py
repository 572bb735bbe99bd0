"""The console checks every form field itself, with the wire's rules, before anything is sent."""

import pytest

from services.console.forms import Problems, choice, ident, money, page_size, quarter, text
from services.console.web import local_path


@pytest.mark.parametrize("amount", ["1", "1000.00", "0.5", "999999999999.99"])
def test_money_takes_what_the_wire_takes(amount: str) -> None:
    p = Problems()
    assert money(p, {"amount": amount}, "amount") == amount
    assert not p


@pytest.mark.parametrize(
    "amount",
    [
        "",
        "1e3",
        "10.001",
        "\u0661\u0660\u0660",
        "\uff11\uff10\uff10",
        "1,000.00",
        "+5",
        "-5.00",
        "0",
        "0.00",
        "NaN",
        "Infinity",
        ".5",
        "5.",
        "1000000000000.00",
        "12 34",
        "0x10",
    ],
)
def test_money_refuses_everything_else_with_a_reason(amount: str) -> None:
    p = Problems()
    money(p, {"amount": amount}, "amount")
    assert p.get("amount")


def test_ids_are_canonical_ascii_uuids() -> None:
    value = "3f2c9a1e-2d1e-4c7a-9b57-0a4f3c2e9d10"
    p = Problems()
    assert ident(p, {"id": value.upper()}, "id") == value and not p
    for bad in ("", "not-an-id", value[:-1], value.replace("1", "\u0661")):
        p = Problems()
        ident(p, {"id": bad}, "id")
        assert "id" in p, bad
    assert ident(Problems(), {}, "id", required=False) == ""


def test_text_has_a_length_limit_and_no_control_characters() -> None:
    p = Problems()
    assert text(p, {"d": "  top-up  "}, "d") == "top-up" and not p
    text(p, {"d": "x" * 501}, "d", most=500)
    text(p, {"r": "a\x00b"}, "r")
    text(p, {}, "u", required=True)
    assert set(p) == {"d", "r", "u"}


def test_choices_quarters_and_page_sizes() -> None:
    p = Problems()
    assert choice(p, {"s": "suspended"}, "s", ("active", "suspended")) == "suspended" and not p
    choice(p, {"s": "merged"}, "s", ("active", "suspended"))
    assert "s" in p
    p = Problems()
    assert quarter(p, {"q": ""}, "q") == "" and quarter(p, {"q": "2026-Q4"}, "q") == "2026-Q4"
    quarter(p, {"q": "\uff12\uff10\uff12\uff16-Q1"}, "q")
    assert "q" in p
    assert [page_size(v) for v in (None, "10", "0", "99999", "\u0665", "-3")] == [
        25,
        10,
        1,
        200,
        25,
        25,
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/accounts/x#commands", "/accounts/x"),
        ("/live?type=a", "/live?type=a"),
        (None, "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_redirects_stay_on_the_console(given: str | None, expected: str) -> None:
    assert local_path(given) == expected
