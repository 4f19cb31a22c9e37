"""/api/v1/organizations, /categories, /executors: only the caller's organizations."""

from __future__ import annotations

from tests.web.helpers import API, check_error, check_schema, check_unauthorized


def test_organizations_are_the_users_own(client, world, token_for):
    body = client.get(f"{API}/organizations", headers=token_for(world.dispatcher_a)).get_json()
    check_schema(client, body, "OrganizationList")
    assert [o["id"] for o in body["items"]] == [world.org_a.id]
    assert body["items"][0]["timezone"] == "Europe/Moscow"
    centre = client.get(f"{API}/organizations", headers=token_for(world.centre_dispatcher)).get_json()
    assert sorted(o["id"] for o in centre["items"]) == sorted([world.org_a.id, world.org_b.id])
    check_unauthorized(client, "get", f"{API}/organizations")


def test_categories_carry_their_deadlines_and_stay_in_the_organization(client, world, token_for):
    headers = token_for(world.dispatcher_a)
    body = client.get(f"{API}/categories", headers=headers).get_json()
    check_schema(client, body, "CategoryList")
    assert {c["organization_id"] for c in body["items"]} == {world.org_a.id}
    chute = next(c for c in body["items"] if c["code"] == "garbage_chute_blockage")
    assert (chute["resolve_minutes"], chute["window_start"], chute["window_end"]) == (120, "08:00", "23:00")
    assert client.get(f"{API}/categories?organization_id={world.org_b.id}", headers=headers).get_json() == {
        "items": []}
    check_error(client.get(f"{API}/categories?organization_id=x", headers=headers), 400, "invalid-input")
    check_unauthorized(client, "get", f"{API}/categories")


def test_executors_of_the_users_organizations(client, world, token_for):
    body = client.get(f"{API}/executors", headers=token_for(world.dispatcher_a)).get_json()
    check_schema(client, body, "ExecutorList")
    assert body["items"] == [{"id": world.executor_a.id, "full_name": "Сидоров Семён Сергеевич",
                              "organization_ids": [world.org_a.id]}]
    centre = client.get(f"{API}/executors", headers=token_for(world.centre_dispatcher)).get_json()
    assert sorted(e["id"] for e in centre["items"]) == sorted([world.executor_a.id, world.executor_b.id])
    check_error(client.get(f"{API}/executors", headers=token_for(world.executor_a)), 403, "forbidden")
    check_unauthorized(client, "get", f"{API}/executors")
