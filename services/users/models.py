"""Tables of the users service (its own database)."""

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
