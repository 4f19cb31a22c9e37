"""Parse a 1–5 rating out of recognised Russian speech (SpeechKit's text of a short answer).

Decisions (issue 4, item 5):
- Digits and number words in any common form count: «5», «пять», «на пятёрку», «четвёрочка»,
  «три балла», «оценка два», «ставлю 5», «5-ку». School-grade nouns count as their number:
  «единица», «кол» → 1, «двойка» → 2, «тройка»/«трояк» → 3, «четвёрка» → 4, «пятёрка» → 5.
- «отлично» (the school name of grade 5) → 5, but only when no number is said: an explicit
  number wins («отлично, четыре» → 4). «хорошо», «плохо», «нормально», «удовлетворительно» and
  the like → ask again: «хорошо» is as often "OK, go on" as a grade, and «плохо» could be 1 or 2.
- A number right after «не» is denied: «не пять, а четыре» → 4. After «нет», «вернее»,
  «точнее», «то есть», «ой» the later number corrects the earlier: «пять, нет, четыре» → 4.
- «из пяти» (the scale) is ignored: «четыре из пяти» → 4; another scale («из десяти») → ask again.
- Two different numbers left («четыре или пять», «от одного до пяти»), a number outside 1–5
  («десять», «0», «25»), a fraction («четыре с половиной», «4,5») or nothing at all → ask again.
- Case, ё/е, punctuation, hyphens and filler words («ну», «э-э», «наверное», «думаю») do not matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedRating:
    value: int | None
    ask_again: bool
    reason: str = ""  # why the robot asks again (for the attempt's log)


_WORDS: dict[int, tuple[str, ...]] = {
    1: ("один", "одна", "единица", "единицу", "единицей", "единичка", "единичку", "кол", "кола", "колом"),
    2: ("два", "две", "двойка", "двойку", "двойкой", "двоечка", "двоечку", "двояк", "двойбан"),
    3: ("три", "тройка", "тройку", "тройкой", "троечка", "троечку", "трояк", "трешка", "трешку", "трех"),
    4: ("четыре", "четверка", "четверку", "четверкой", "четверочка", "четверочку", "четверочкой", "четырех"),
    5: ("пять", "пятерка", "пятерку", "пятеркой", "пятерочка", "пятерочку", "пятерочкой", "пяти", "пятерик"),
}
# Forms mostly heard in "от одного до пяти", "из двух": they count as numbers (so a range is a conflict).
_WORDS[1] += ("одного", "одной")
_WORDS[2] += ("двух",)
NUMBER_WORDS: dict[str, int] = {w: v for v, words in _WORDS.items() for w in words}

# Numbers that are not ratings: said, they make the answer unusable (ask again).
OUT_OF_RANGE_WORDS = frozenset({
    "ноль", "нуль", "нуля", "шесть", "шестерка", "семь", "семерка", "восемь", "восьмерка", "девять",
    "девятка", "десять", "десятка", "десяти", "одиннадцать", "двенадцать", "двадцать", "тридцать",
    "сорок", "пятьдесят", "шестьдесят", "семьдесят", "восемьдесят", "девяносто", "сто", "сотня",
    "тысяча", "миллион",
})
FIVE_WORDS = frozenset({"отлично", "отличненько", "превосходно", "великолепно"})
FRACTION_WORDS = frozenset({"половиной", "половина", "полтора", "полтины", "запятая"})
NEGATION = "не"
CORRECTIONS = frozenset({"нет", "вернее", "точнее", "ой", "поправка"})
SCALE_MARK = "из"
# Words that may stand between «не» and the number it denies: «не на пять», «не ну пять».
_SKIP_AFTER_NEGATION = frozenset({"на", "ну", "э", "ээ", "эээ", "м", "мм", "а", "то", "что", "чтобы"})

# A number followed by one of these counts something else: «один момент», «два раза приходили».
COUNTED_NOUNS = frozenset({
    "момент", "моментик", "минуту", "минутку", "минуты", "минут", "секунду", "секундочку", "секунды", "секунд",
    "раз", "раза", "час", "часа", "часов", "день", "дня", "дней", "неделю", "недели", "недель", "человека",
    "человек", "мастера", "квартиры", "этаж", "подъезд",
})

_TOKEN = re.compile(r"\d+|[a-zа-я]+")


def normalize(text: str) -> str:
    """Lower case, ё → е, everything that is neither a letter nor a digit → space."""
    return " ".join(_TOKEN.findall((text or "").lower().replace("ё", "е")))


def _tokens(text: str) -> list[str]:
    tokens = _TOKEN.findall((text or "").lower().replace("ё", "е"))
    # "то есть" is one correction marker.
    out: list[str] = []
    for tok in tokens:
        if tok == "есть" and out and out[-1] == "то":
            out[-1] = "вернее"
            continue
        out.append(tok)
    return out


def _number(token: str) -> int | None:
    """The number a token names (any size), or None if it is not a number."""
    if token.isdigit():
        return int(token)
    if token in NUMBER_WORDS:
        return NUMBER_WORDS[token]
    if token in OUT_OF_RANGE_WORDS:
        return -1
    return None


def parse_rating(text: str) -> ParsedRating:
    """The rating in `text`, or `ask_again` with the reason."""
    tokens = _tokens(text)
    if not tokens:
        return ParsedRating(None, True, "пустой ответ")
    values: list[int] = []  # numbers said, in order, after denials and corrections
    weak_five = False
    negate = False
    after_scale = False
    for i, tok in enumerate(tokens):
        if tok in FRACTION_WORDS:
            return ParsedRating(None, True, "дробная оценка")
        number = _number(tok)
        if number is not None and i + 1 < len(tokens) and tokens[i + 1] in COUNTED_NOUNS:
            negate = False  # «два раза», «один момент»: not a rating
            continue
        if number is None:
            after_scale = False
            if tok == NEGATION:
                negate = True
            elif tok in CORRECTIONS:
                values.clear()
                weak_five = False
                negate = False
            elif tok == SCALE_MARK:
                after_scale = True
                negate = False
            elif tok in FIVE_WORDS:
                if not negate:
                    weak_five = True
                negate = False
            elif tok not in _SKIP_AFTER_NEGATION:
                negate = False
            continue
        if after_scale:
            after_scale = False
            if number != 5:
                return ParsedRating(None, True, "другая шкала оценок")
            continue
        if negate:
            negate = False
            continue
        values.append(number)
    if any(v < 1 or v > 5 for v in values):
        return ParsedRating(None, True, "число вне шкалы 1–5")
    distinct = set(values)
    if len(distinct) > 1:
        return ParsedRating(None, True, "названо несколько оценок")
    if distinct:
        return ParsedRating(distinct.pop(), False)
    if weak_five:
        return ParsedRating(5, False)
    return ParsedRating(None, True, "оценка не названа")
