"""Property-based fuzz of every /api/v1 operation, generated from the served OpenAPI document by
schemathesis (issue 10 item 9, decision 0016).

Each operation gets schema-valid and schema-violating requests (bodies, path and query values,
boundary values such as ids past INT_MAX and dates in year 1) from an administrator of both
organizations, with a ticket, a call and a missed call in the database. Asserted: never a 5xx;
every status, content type and body is one the document declares for the operation; a 405 names
the allowed methods; a request without the token is refused.

Not asserted: schemathesis's `positive_data_acceptance` and `negative_data_rejection`. The API
has rules no JSON schema states (organization_id is required only of users of several
organizations, a period is at most 92 days), reads an empty query value as absent and ignores
unknown query arguments, so those two checks would report the API's documented behaviour.

Bounded and reproducible: a fixed number of examples per operation and `derandomize` (the
examples follow from the document alone), no example database. The whole fuzz takes about 15 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from models.organization import Role
from tests import factories as f
from tests.web.helpers import api_document

# Per operation; a deeper run by hand: OPENADS_FUZZ_EXAMPLES=500 pytest tests/web/test_api_fuzz.py
MAX_EXAMPLES = int(os.environ.get("OPENADS_FUZZ_EXAMPLES", "25"))


class _AppUnderTest:
    """The WSGI app the schema sends to. The schema is loaded once, at import, to make one test
    per operation; each test's own app (with its own database) is plugged in by `served_app`."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


_app_under_test = _AppUnderTest()
schema = schemathesis.openapi.from_dict(api_document())
schema.app = _app_under_test


@pytest.fixture
def served_app(app: Any) -> Iterator[Any]:
    _app_under_test.app = app
    yield app
    _app_under_test.app = None


@pytest.fixture
def admin_token(db: Any, world: Any, token_for: Any) -> dict[str, str]:
    """An administrator of both organizations with every token scope (every operation is open to
    them), and a row of each kind the operations read."""
    with db.write() as s:
        admin = f.make_user(s, [world.org_a, world.org_b], Role.ADMIN, login="fuzz_admin")
        f.make_ticket(s, world.org_a, world.cats_a["roof_leak"], house_id=world.house_a.id)
        f.make_missed_call(s, world.org_a)
    return token_for(admin, scopes="read write telephony settings")  # type: ignore[no-any-return]


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_api_operation_never_fails_and_answers_as_documented(
    case: Any, served_app: Any, admin_token: dict[str, str]
) -> None:
    case.call_and_validate(headers=admin_token,
                           excluded_checks=[positive_data_acceptance, negative_data_rejection])
