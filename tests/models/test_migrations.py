from models.migrate import check


def test_models_and_migrations_agree(db, database_url) -> None:
    # alembic check raises when autogenerate would produce operations (model drift).
    check(database_url)
