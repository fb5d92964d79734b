"""The todo app in a real browser, on the dev stack (Vite) and the production stack (nginx):
the page loads and shows the database connected, and a todo goes through add, done, edit,
reload, delete, as a user does it; in production under nginx's Content-Security-Policy,
with no violation of it."""

import re
import time
import uuid

from playwright.sync_api import expect

# Headers nginx sends with the page in production (the dev server sends none of them).
PROD_PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "camera=()",
}


def test_a_todo_through_the_ui_add_done_edit_reload_delete(app, page, measure):
    start = time.monotonic()
    loaded = page.goto(app.url + "/")
    if app.mode == "prod":
        headers = loaded.all_headers()
        for name, part in PROD_PAGE_HEADERS.items():
            assert part in headers.get(name, ""), f"{name}: {headers.get(name)!r}"
    expect(page.get_by_role("heading", name="Todos")).to_be_visible()
    expect(page.get_by_test_id("health")).to_contain_text("Database: connected")
    expect(page.get_by_test_id("health")).to_have_attribute("data-status", "ok")

    title = f"e2e {uuid.uuid4().hex[:10]}"
    page.get_by_label("New todo").fill(title)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/todos")) as created:
        page.get_by_role("button", name="Add", exact=True).click()
    assert created.value.status == 201
    item = page.get_by_test_id("todo-item").filter(has_text=title)
    expect(item).to_have_count(1)
    expect(page.get_by_label("New todo")).to_have_value("")

    done = page.get_by_label(f"Done: {title}")
    expect(done).not_to_be_checked()
    with page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        done.click()
    assert patched.value.status == 200
    expect(done).to_be_checked()
    expect(item).to_have_class(re.compile(r"\btodo--done\b"))

    edited = f"{title} edited"
    page.get_by_role("button", name=f"Edit {title}").click()
    page.get_by_label(f"Edit title: {title}").fill(edited)
    with page.expect_response(lambda r: r.request.method == "PATCH") as renamed:
        page.get_by_role("button", name="Save", exact=True).click()
    assert renamed.value.status == 200
    title = edited
    item = page.get_by_test_id("todo-item").filter(has_text=title)
    expect(item.locator(".todo__title")).to_have_text(title)

    page.reload()
    item = page.get_by_test_id("todo-item").filter(has_text=title)
    expect(item).to_have_count(1)
    expect(page.get_by_label(f"Done: {title}")).to_be_checked()

    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        page.get_by_role("button", name=f"Delete {title}").click()
    assert deleted.value.status == 204
    expect(item).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("health")).to_contain_text("Database: connected")
    expect(page.get_by_text("Loading…")).to_have_count(0)
    expect(page.get_by_test_id("todo-item").filter(has_text=title)).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
    measure(f"{app.mode}: browser add/done/edit/reload/delete", time.monotonic() - start, "s")
    assert page.csp_violations == []
    policy_messages = [
        line for line in page.console_log if "Content Security Policy" in line or "Permissions-Policy" in line
    ]
    assert policy_messages == []
