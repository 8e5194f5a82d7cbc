from datetime import date


def format_date(day: date) -> str:
    return day.strftime("%m/%d/%Y")


def render_receipt(user: dict[str, str], day: date, amount: float) -> str:
    return f"Receipt for {user['name']}: ${amount:.2f} on {format_date(day)}"
