from models.migrate import check


def test_models_and_migrations_agree(db, database_url) -> None:
    # alembic check raises when autogenerate would produce operations (model drift).
    check(database_url)


def test_organizations_of_before_get_the_follow_up_inspection_category_once(tmp_path) -> None:
    import sqlalchemy as sa

    from models.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0030_interruption_limits")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for org_id in (1, 2):
            conn.execute(sa.text("INSERT INTO organizations (id, name, short_name, kind, timezone, "
                                 "default_deadline_minutes, position_retention_days, created_at) VALUES "
                                 f"({org_id}, 'УК {org_id}', 'У{org_id}', 'УК', 'Europe/Moscow', 4320, 7, "
                                 "'2026-01-01 00:00:00')"))
        # Organization 2 already made its own category of that code (renamed, 12 h): it is kept.
        conn.execute(sa.text("INSERT INTO categories (organization_id, code, name, is_emergency, resolve_minutes, "
                             "count_from_damage, active, ack_minutes) VALUES (2, 'extraordinary_inspection', "
                             "'Осмотр после аварии', 0, 720, 0, 1, 5)"))
    upgrade(url, "head")
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT organization_id, name, resolve_minutes, active FROM categories "
                                    "WHERE code = 'extraordinary_inspection' ORDER BY organization_id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "Внеочередной осмотр общего имущества после аварии", 1440, 1),
                                        (2, "Осмотр после аварии", 720, 1)]


def test_existing_robot_settings_get_the_house_notice_templates(tmp_path) -> None:
    import sqlalchemy as sa

    from models.migrate import upgrade
    from models.rules.robot import DEFAULT_TEMPLATES

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0031_follow_up_inspection")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # SQLite does not check foreign keys on this connection
        conn.execute(sa.text(
            "INSERT INTO robot_settings (organization_id, rating_calls_enabled, call_window_start, call_window_end,"
            " max_attempts, retry_interval_minutes, rating_prompt, notifications_enabled, quiet_start, quiet_end,"
            " template_registered, template_assigned, template_en_route, template_done, template_closed, updated_at)"
            " VALUES (7, 1, '10:00:00', '20:00:00', 3, 30, 'p', 1, '21:00:00', '09:00:00', 'r', 'a', 'e', 'd', 'c',"
            " '2026-01-01 00:00:00')"))
    upgrade(url, "head")
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT template_closed, template_incident, template_restored FROM robot_settings"
                                   " WHERE organization_id = 7")).one()
    engine.dispose()
    assert tuple(row) == ("c", DEFAULT_TEMPLATES["incident"], DEFAULT_TEMPLATES["restored"])
