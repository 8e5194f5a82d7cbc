from invoice import subtotal, total


def test_subtotal() -> None:
    assert subtotal([(2.5, 4), (1.0, 3)]) == 13.0


def test_total_without_discount() -> None:
    assert total([(100.0, 2)], tax_rate=0.2) == 240.0
