"""A synthetic housing stock file for the import bench and the import-while-working tests: `rows`
residents, 200 flats to a house, each with a personal account and a mobile phone (issue 12's
160 000-row import).

Run alone: `python -m bench.housing_file <path.csv> [rows]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

HEADER = "Адрес;ФИАС;Широта;Долгота;Квартира;Подъезд;Этаж;Лицевой счёт;ФИО;Телефоны\n"
FLATS_PER_HOUSE = 200
FIRST = ("Иван", "Пётр", "Анна", "Мария", "Олег", "Елена", "Сергей", "Ольга")
LAST = ("Иванов", "Петров", "Смирнов", "Кузнецов", "Попов", "Соколов", "Лебедев", "Новиков")


def write_housing_csv(path: Path, rows: int, *, street: str = "ул. Импортная", account_base: int = 9_000_000,
                      phone_base: int = 0) -> Path:
    """`rows` data rows (semicolon CSV, UTF-8) of houses «г. Тула, <street>, д. N»."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(rows):
            house, flat = divmod(i, FLATS_PER_HOUSE)
            name = f"{LAST[i % len(LAST)]} {FIRST[(i // 8) % len(FIRST)]} {i}"
            out.write(f"г. Тула, {street}, д. {house + 1};;54.{house % 1000:03d};37.{house % 997:03d};{flat + 1};"
                      f"{flat // 40 + 1};{flat % 10 + 1};{account_base + i};{name};+7916{phone_base + i:07d}\n")
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1])
    write_housing_csv(target, int(sys.argv[2]) if len(sys.argv) > 2 else 160_000)
    print(target)
