"""The ARI emulator fixtures (`ari_emulator`, `make_ari_emulator`) for the call simulator page's
tests, and the administrator the admin pages' and admin API's tests act as."""

import pytest

from models.organization import Role
from tests import factories as f
from tests.emulator.ari.pytest_plugin import ari_emulator, make_ari_emulator  # noqa: F401


@pytest.fixture
def admin_a(db, world):
    """An administrator of organization A (the admin pages' and admin API's tests)."""
    with db.write() as s:
        return f.make_user(s, [s.merge(world.org_a)], Role.ADMIN, login="adm_a", full_name="Админова Алла Андреевна")


@pytest.fixture
def inspector(db, world):
    """A read-only inspector of organization A (decision 0034)."""
    with db.write() as s:
        return f.make_user(s, [s.merge(world.org_a)], Role.INSPECTOR, login="insp_a",
                           full_name="Проверкина Инна Ивановна")
