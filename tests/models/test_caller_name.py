"""The caller's name on the dispatchers' phones (models.rules.caller_name), pure."""

from __future__ import annotations

from dataclasses import dataclass

from models.rules.caller_name import MAX_CALLER_NAME, caller_name, short_premise, surname


@dataclass(frozen=True)
class R:
    full_name: str
    premise_number: str = "70"
    premise_kind: str = "кв."


def test_surname_is_the_first_word_of_the_register_name() -> None:
    assert surname("Яковлева Зоя Петровна") == "Яковлева"
    assert surname("  Яковлева  ") == "Яковлева"
    assert surname("") == ""


def test_short_premise_keeps_a_space_only_after_a_kind_without_a_dot() -> None:
    assert short_premise("кв.", "70") == "кв.70"
    assert short_premise("офис", "2") == "офис 2"
    assert short_premise("", "5") == "5"
    assert short_premise("кв.", "") == ""


def test_one_resident_is_surname_and_flat() -> None:
    assert caller_name([R("Яковлева Зоя Петровна")]) == "Яковлева кв.70"


def test_a_resident_without_a_premise_is_the_surname_alone() -> None:
    assert caller_name([R("Яковлева Зоя Петровна", premise_number="", premise_kind="")]) == "Яковлева"


def test_an_unknown_number_has_no_name() -> None:
    assert caller_name([]) == ""


def test_residents_sharing_the_number_are_all_named_by_flat() -> None:
    assert caller_name([R("Яковлева Зоя"), R("Яковлев Пётр")]) == "Яковлева, Яковлев кв.70"
    assert caller_name([R("Яковлева Зоя"), R("Беляева Бэлла", "7")]) == "Яковлева кв.70, Беляева кв.7"
    assert caller_name([R("Ким Анна"), R("Ким Олег")]) == "Ким кв.70"  # one surname once


def test_too_many_residents_are_the_first_and_a_count() -> None:
    many = [R(f"Александрова-{i} Анна", str(100 + i)) for i in range(5)]
    assert caller_name(many) == "Александрова-0 кв.100 +4"


def test_the_name_never_exceeds_the_phone_screen() -> None:
    name = caller_name([R("Я" * 60)])
    assert len(name) == MAX_CALLER_NAME and name.endswith("…")
    assert len(caller_name([R("Яковлева Зоя")], limit=8)) == 8
