"""The OpenAPI document: valid OpenAPI 3.1, public, and it documents every /api/v1 route and method."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from tests.web.helpers import API, check_error


def test_document_is_valid_openapi(client):
    resp = client.get(f"{API}/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}


def test_every_api_rule_and_method_is_documented(app, client):
    doc = client.get(f"{API}/openapi.json").get_json()
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule[len(API):])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    assert served and served == documented, (served - documented, documented - served)


def test_documented_path_parameters_match_the_path(client):
    doc = client.get(f"{API}/openapi.json").get_json()
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{([a-z_]+)}", path))
        for op in ops.values():
            assert {p["name"] for p in op["parameters"] if p["in"] == "path"} == names, path


def test_unknown_api_path_is_a_json_404(client, world, token_for):
    check_error(client.get(f"{API}/nothing-here", headers=token_for(world.dispatcher_a)), 404)
    check_error(client.delete(f"{API}/tickets", headers=token_for(world.dispatcher_a)), 405)
