"""parse_rating: Russian recognised text → 1–5 or "ask again" (issue 4, item 5)."""

from __future__ import annotations

import pytest

from models.rules.rating import ParsedRating, normalize, parse_rating

ASK = None  # the robot asks again

CASES: list[tuple[str, int | None]] = [
    # plain digits and words
    ("5", 5), ("4", 4), ("3", 3), ("2", 2), ("1", 1),
    ("пять", 5), ("четыре", 4), ("три", 3), ("два", 2), ("один", 1), ("две", 2), ("одна", 1),
    # the phrasings
    ("на пятёрку", 5), ("на пятерку", 5), ("четвёрочка", 4), ("три балла", 3), ("оценка два", 2),
    ("ставлю 5", 5), ("не пять, а четыре", 4), ("хорошо", ASK),
    # grade nouns and diminutives
    ("единица", 1), ("единичка", 1), ("кол", 1), ("ставлю кол", 1), ("двойка", 2), ("двоечку", 2),
    ("тройка", 3), ("на троечку", 3), ("трояк", 3), ("четвёрка", 4), ("на твёрдую четвёрку", 4),
    ("пятёрочка", 5), ("пятерочку поставлю", 5), ("Пятёрка!", 5),
    # grade words: «отлично» is 5 unless a number is said; the others are not numbers
    ("отлично", 5), ("всё отлично, спасибо", 5), ("отлично, четыре", 4), ("не отлично", ASK),
    ("плохо", ASK), ("нормально", ASK), ("удовлетворительно", ASK), ("хорошо, хорошо", ASK),
    ("хорошо, пять", 5),
    # case, ё, punctuation, fillers
    ("ПЯТЬ", 5), ("Пять.", 5), ("пять!!!", 5), ("ну пять", 5), ("э-э... четыре", 4), ("ээ ну наверное три", 3),
    ("наверное, четыре", 4), ("ну, думаю, пять баллов", 5), ("мм... два, наверное", 2), ("Четыре балла.", 4),
    ("пять пять", 5), ("5ку", 5), ("на 5-ку", 5), ("4+", 4), ("пять с плюсом", 5), ("четыре с минусом", 4),
    ("оцениваю на четыре", 4), ("поставлю вам три", 3), ("оценка - 2", 2), ("да, пять", 5),
    # denials and corrections
    ("не на пять, на четыре", 4), ("пять, нет, четыре", 4), ("три, вернее четыре", 4), ("четыре, то есть пять", 5),
    ("ой, два", 2), ("не плохо, четыре", 4), ("не три и не два, а один", 1), ("нет", ASK), ("нет, пять", 5),
    # the scale
    ("четыре из пяти", 4), ("пять из пяти", 5), ("пять баллов из пяти", 5), ("восемь из десяти", ASK),
    ("пять из десяти", ASK),
    # conflicts, ranges, fractions, out of range
    ("четыре или пять", ASK), ("от одного до пяти", ASK), ("между тройкой и четвёркой", ASK),
    ("четыре с половиной", ASK), ("4,5", ASK), ("десять", ASK), ("10", ASK), ("0", ASK), ("ноль", ASK),
    ("шесть", ASK), ("двадцать пять", ASK), ("пятьдесят", ASK), ("сто баллов", ASK),
    # counting something else
    ("один момент", ASK), ("одну минуту", ASK), ("два раза приходили, но всё починили, пять", 5),
    ("три дня ждали, два", 2),
    # noise and non-answers
    ("", ASK), ("   ", ASK), ("алло", ASK), ("алло? кто это?", ASK), ("что?", ASK), ("не знаю", ASK),
    ("не могу оценить", ASK), ("перезвоните позже", ASK), ("[неразборчиво]", ASK), ("...", ASK),
    ("пятница", ASK), ("четверг", ASK), ("трижды", ASK), ("неплохо", ASK),
]


def test_the_table_has_at_least_sixty_phrasings() -> None:
    assert len(CASES) >= 60
    assert len({text for text, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_parse_rating(text: str, expected: int | None) -> None:
    result = parse_rating(text)
    assert result.value == expected, (text, result)
    assert result.ask_again is (expected is None)


def test_ask_again_carries_the_reason_for_the_attempt_log() -> None:
    assert parse_rating("четыре или пять") == ParsedRating(None, True, "названо несколько оценок")
    assert parse_rating("десять") == ParsedRating(None, True, "число вне шкалы 1–5")
    assert parse_rating("хорошо") == ParsedRating(None, True, "оценка не названа")
    assert parse_rating("") == ParsedRating(None, True, "пустой ответ")
    assert parse_rating("пять") == ParsedRating(5, False, "")


def test_normalize_folds_case_yo_and_punctuation() -> None:
    assert normalize("Э-э... На ПЯТЁРКУ!") == "э э на пятерку"
