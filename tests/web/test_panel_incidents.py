from sqlalchemy import func, select

from models.ticket import Incident, Ticket
from tests import factories as f


def _count(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Incident))


def test_dispatcher_registers_localises_and_liquidates_an_incident(db, world, login_as) -> None:
    client = login_as(world.dispatcher_a)
    resp = client.post("/incidents", data={
        "organization_id": world.org_a.id, "house_id": world.house_a.id, "title": "Прорыв ХВС в подвале",
        "utility": "cold_water", "announcement": "Авария ХВС, подъезд 2, устранение до 18:00",
        "started_at": "2026-03-02T10:15",
    })
    assert resp.status_code == 302
    with db.read() as s:
        inc = s.scalars(select(Incident)).one()
        assert inc.started_at.isoformat() == "2026-03-02T07:15:00+00:00"  # 10:15 Moscow time
        inc_id = inc.id
    page = client.get("/incidents").get_data(as_text=True)
    assert "Прорыв ХВС в подвале" in page and "Авария ХВС, подъезд 2, устранение до 18:00" in page
    assert "02.03.2026 10:15" in page
    assert client.post(f"/incidents/{inc_id}/localize").status_code == 302
    resp = client.post(f"/incidents/{inc_id}/liquidate", follow_redirects=True)
    with db.read() as s:
        inc = s.get(Incident, inc_id)
        assert inc.localized_at is not None and inc.liquidated_at is not None
        # The follow-up inspection (regulations D7), registered by the dispatcher who liquidated it.
        follow_up = s.scalars(select(Ticket).where(Ticket.incident_id == inc_id)).one()
        assert follow_up.registered_by_id == world.dispatcher_a.id and follow_up.house_id == world.house_a.id
        number = follow_up.number
    assert (f"Авария ликвидирована; зарегистрирована заявка № {number} на внеочередной осмотр общего "
            "имущества (срок — сутки)") in resp.get_data(as_text=True)


def test_incidents_are_tenant_scoped(db, world, login_as) -> None:
    client = login_as(world.dispatcher_b)
    resp = client.post("/incidents", data={"organization_id": world.org_b.id, "house_id": world.house_b.id,
                                           "title": "Нет отопления"})
    assert resp.status_code == 302
    with db.read() as s:
        inc_id = s.scalar(select(Incident.id))
    client = login_as(world.dispatcher_a)
    assert "Нет отопления" not in client.get("/incidents").get_data(as_text=True)
    assert client.post(f"/incidents/{inc_id}/liquidate").status_code == 404
    # org A's dispatcher cannot register an incident in org B or on org B's house
    assert client.post("/incidents", data={"organization_id": world.org_b.id, "house_id": world.house_b.id,
                                           "title": "x"}).status_code == 404
    assert client.post("/incidents", data={"organization_id": world.org_a.id, "house_id": world.house_b.id,
                                           "title": "x"}).status_code == 400
    assert _count(db) == 1


def test_executor_cannot_register_incidents(db, world, login_as) -> None:
    client = login_as(world.executor_a)
    assert client.post("/incidents", data={"organization_id": world.org_a.id, "house_id": world.house_a.id,
                                           "title": "x"}).status_code == 403
    assert _count(db) == 0


def test_dispatcher_tells_the_houses_residents_of_the_accident_and_of_its_end(db, world, login_as) -> None:
    from models.outbox import OutboxMessage

    with db.write() as s:
        inc_id = f.make_incident(s, s.merge(world.house_a), title="Прорыв ХВС", announcement="Перекрыт стояк.").id
    client = login_as(world.dispatcher_a)
    page = client.get("/incidents").get_data(as_text=True)
    assert "Жителям дома: не сообщалось" in page and f'id="notify-{inc_id}"' in page
    page = client.post(f"/incidents/{inc_id}/notify/incident", follow_redirects=True).get_data(as_text=True)
    assert "Жителям дома об аварии: сообщений в очереди — 1." in page  # the world's resident of ул. Ленина
    assert "Жителям дома: об аварии — 1" in page
    # The municipality's column lists only the municipality's notices.
    assert "Жителям дома: авария" not in page.split(f'id="notices-{inc_id}"')[1].split("</td>")[0]
    page = client.post(f"/incidents/{inc_id}/notify/incident", follow_redirects=True).get_data(as_text=True)
    assert "сообщений в очереди — 0; уже оповещены раньше — 1" in page
    assert client.post(f"/incidents/{inc_id}/notify/restored").status_code == 400
    client.post(f"/incidents/{inc_id}/liquidate")
    page = client.post(f"/incidents/{inc_id}/notify/restored", follow_redirects=True).get_data(as_text=True)
    assert "Жителям дома об устранении аварии: сообщений в очереди — 1." in page
    with db.read() as s:
        purposes = sorted(s.scalars(select(OutboxMessage.purpose).where(
            OutboxMessage.incident_id == inc_id, OutboxMessage.purpose.startswith("resident_"))))
    assert purposes == ["resident_incident", "resident_restored"]
    # Another organization's dispatcher, an executor and an inspector cannot.
    assert login_as(world.dispatcher_b).post(f"/incidents/{inc_id}/notify/restored").status_code == 404
    assert login_as(world.executor_a).post(f"/incidents/{inc_id}/notify/restored").status_code == 403
