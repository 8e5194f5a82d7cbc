def count_words(text: str) -> int:
    raise NotImplementedError


def count_lines(text: str) -> int:
    raise NotImplementedError


def top_word(text: str) -> str:
    raise NotImplementedError
