"""Housing stock: houses (МКД), premises, personal accounts (ЛС), residents and their phones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, OrgOwned, UTCDateTime, utcnow


class House(OrgOwned, Base):
    __tablename__ = "houses"
    __table_args__ = (UniqueConstraint("organization_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(300))
    fias_id: Mapped[str | None] = mapped_column(String(36), index=True)  # ФИАС / ГАР house GUID
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    premises: Mapped[list[Premise]] = relationship(back_populates="house", order_by="Premise.id")
    notes: Mapped[list[HouseNote]] = relationship(back_populates="house", order_by="HouseNote.id")


class HouseNote(OrgOwned, Base):
    """Per-house hint for dispatchers and executors: keys, access codes, shut-off valves."""

    __tablename__ = "house_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    house_id: Mapped[int] = mapped_column(ForeignKey("houses.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    house: Mapped[House] = relationship(back_populates="notes")


class Premise(OrgOwned, Base):
    __tablename__ = "premises"
    __table_args__ = (UniqueConstraint("house_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    house_id: Mapped[int] = mapped_column(ForeignKey("houses.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20))  # "30", "30а", "пом. 2"
    kind: Mapped[str] = mapped_column(String(20), default="кв.")
    entrance: Mapped[str | None] = mapped_column(String(10))
    floor: Mapped[str | None] = mapped_column(String(10))

    house: Mapped[House] = relationship(back_populates="premises")

    @property
    def label(self) -> str:
        return f"{self.kind} {self.number}"


class Account(OrgOwned, Base):
    """A personal account (лицевой счёт) of a premise."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("organization_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    premise_id: Mapped[int] = mapped_column(ForeignKey("premises.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(40))

    premise: Mapped[Premise] = relationship()


class Resident(OrgOwned, Base):
    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    premise_id: Mapped[int | None] = mapped_column(ForeignKey("premises.id", ondelete="SET NULL"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    note: Mapped[str] = mapped_column(Text, default="")  # free text for dispatchers ("конфликтный")
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    premise: Mapped[Premise | None] = relationship()
    account: Mapped[Account | None] = relationship()
    phones: Mapped[list[ResidentPhone]] = relationship(
        back_populates="resident", cascade="all, delete-orphan", order_by="ResidentPhone.id"
    )


class ResidentPhone(OrgOwned, Base):
    __tablename__ = "resident_phones"
    __table_args__ = (
        UniqueConstraint("resident_id", "phone"),
        Index("resident_phones__idx__org_phone", "organization_id", "phone"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(16))  # E.164
    label: Mapped[str] = mapped_column(String(30), default="")

    resident: Mapped[Resident] = relationship(back_populates="phones")
