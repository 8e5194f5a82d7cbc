"""Text helpers shared by the tools and the context manager."""


def truncate_middle(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut from the middle ...]\n{text[-tail:]}"


def money(value: float | None, digits: int = 2) -> str:
    """Dollars as every report shows them: $1,234.50, or "unknown"."""
    return "unknown" if value is None else f"${value:,.{digits}f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def pass_at(value: float | None, short: int = 0) -> str:
    """pass@k as every report shows it; undefined because tasks have fewer than k graded
    attempts (README "Evaluations"), it says how many: "- (1 task short)"."""
    if value is None and short:
        return f"- ({short} task{'s' if short > 1 else ''} short)"
    return percent(value)
