def first_word(text: str) -> str:
    return text.split()[0]
