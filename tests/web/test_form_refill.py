"""web/form_refill.py: the sent values go back into the one form they were sent from, nothing else
of the page changes, and nothing sent is dropped."""

from __future__ import annotations

from web.form_refill import refill

NOTICE = '<div id="n">не сохранено</div>'

PAGE = """<!doctype html>
<html><body><header><form method="post" action="/logout"><input name="csrf_token" value="t1"></form></header>
<main><h1>Карточка &laquo;№ 5&raquo;</h1>
<details class="edit"><summary>Изменить</summary>
<form method="post" action="/tickets/5/edit">
  <input type="hidden" name="csrf_token" value="fresh">
  <textarea name="description" rows="3">старое &amp; описание</textarea>
  <input name="reporter_name" value="Старый">
  <select name="category_id"><option value="1" selected>Кровля</option><option value="2">Лифт</option></select>
  <select name="premise_id"><option value="">—</option></select>
  <input type="checkbox" name="is_emergency" value="1" checked>
  <input type="radio" name="visibility" value="internal" checked><input type="radio" name="visibility" value="resident">
  <input type="password" name="password" value="should-go">
  <button type="submit" name="to" value="closed">Закрыть</button>
</form></details>
<form method="post" action="/tickets/5/comments"><textarea name="text"></textarea></form>
<script>if (a < b && c) { x = "<form>"; }</script>
</main></body></html>"""


def _refill(values: list[tuple[str, str]], page: str = PAGE, action: str = "/tickets/5/edit") -> str:
    html = refill(page, page_url="/tickets/5", action=action, values=values, notice=NOTICE)
    assert html is not None
    return html


def test_values_go_back_into_their_controls_and_the_form_is_opened() -> None:
    html = _refill([("csrf_token", "stale"), ("description", "новое <описание> & ещё"), ("reporter_name", "Иванова"),
                    ("category_id", "2"), ("visibility", "resident"), ("password", "секрет"), ("to", "closed")])
    assert '<textarea name="description" rows="3">новое &lt;описание&gt; &amp; ещё</textarea>' in html
    assert '<input name="reporter_name" value="Иванова">' in html
    assert '<option value="1">Кровля</option><option value="2" selected>Лифт</option>' in html
    # Not sent: an unticked checkbox.
    assert '<input type="checkbox" name="is_emergency" value="1">' in html
    assert '<input type="radio" name="visibility" value="internal"><input type="radio" name="visibility" ' \
           'value="resident" checked>' in html
    assert "секрет" not in html and "should-go" not in html  # passwords are typed again
    assert '<input type="hidden" name="csrf_token" value="fresh">' in html  # the page's own token
    assert html.count('name="to"') == 1  # the button is pressed again, not doubled by a hidden input
    assert '<details class="edit" open>' in html
    assert '<form method="post" action="/tickets/5/edit" data-kept="1">' in html


def test_the_rest_of_the_page_is_copied_as_written_and_the_notice_leads_main() -> None:
    html = _refill([("description", "x")])
    assert "<main>" + NOTICE + "<h1>Карточка &laquo;№ 5&raquo;</h1>" in html
    assert '<form method="post" action="/logout"><input name="csrf_token" value="t1"></form>' in html
    assert '<form method="post" action="/tickets/5/comments"><textarea name="text"></textarea></form>' in html
    assert '<script>if (a < b && c) { x = "<form>"; }</script>' in html
    assert html.startswith("<!doctype html>")


def test_a_value_the_page_has_no_control_or_option_for_is_still_sent_again() -> None:
    html = _refill([("premise_id", "17"), ("call_id", "42"), ("call_id", "43")])
    assert '<select name="premise_id"><option value="">—</option><option value="17" selected>17</option></select>' \
        in html
    assert '<input type="hidden" name="call_id" value="42"><input type="hidden" name="call_id" value="43"></form>' \
        in html


def test_a_page_without_the_form_is_not_used() -> None:
    assert refill(PAGE, page_url="/tickets/5", action="/tickets/5/transition", values=[("to", "closed")],
                  notice=NOTICE) is None
    # A form without an action sends to the page's own address.
    login = '<main><form method="post"><input name="login"><input type="password" name="password"></form></main>'
    html = refill(login, page_url="/login?next=/x", action="/login?next=/x", values=[("login", "disp_a")],
                  notice=NOTICE)
    assert html is not None and '<input name="login" value="disp_a">' in html
