"""Hidden tests: the grader copies these in after applying the agent's patch."""

from invoice import total


def test_discount_comes_off_before_tax() -> None:
    assert total([(100.0, 1)], tax_rate=0.10, discount=10.0) == 99.0


def test_discount_never_makes_the_total_negative() -> None:
    assert total([(5.0, 1)], tax_rate=0.25, discount=20.0) == 0.0


def test_no_discount_unchanged() -> None:
    assert total([(19.99, 3)], tax_rate=0.07) == 64.17
