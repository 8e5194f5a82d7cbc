"""Invoice arithmetic for the billing page."""


def subtotal(items: list[tuple[float, int]]) -> float:
    """Sum of price * quantity over (price, quantity) pairs."""
    return sum(price * quantity for price, quantity in items)


def total(items: list[tuple[float, int]], tax_rate: float, discount: float = 0.0) -> float:
    """What the client pays: items, less the discount, plus tax, in cents."""
    taxed = subtotal(items) * (1 + tax_rate)
    return round(taxed - discount, 2)
