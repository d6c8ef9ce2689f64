"""A running task's log in the browser: the job page shows its output as the task prints it (no
click, no reload), says it is following, and says when the task ended. The script prints a line and
waits for the test to open a gate before the next, so "while it runs" is a fact, not a timing."""

import re
import uuid

from pages import log_in
from playwright.sync_api import expect

GATED = """# {nonce}
import os, time
for i in range(3):
    print(f"line {{i}}", flush=True)
    while not os.path.exists({gates!r} + f"/go{{i}}"):
        sum(range(50_000))  # some CPU for its chart
        time.sleep(0.01)
print("done", flush=True)
"""


def test_the_job_page_follows_a_running_tasks_log_live(net, web, tmp_path, publish_screenshots):
    page, url = web.page, net.url
    gates = tmp_path / "gates"
    gates.mkdir()
    script = tmp_path / "gated.py"
    script.write_text(GATED.format(nonce=uuid.uuid4().hex, gates=str(gates)))
    job_id = net.client().submit([script], mode="single")["id"]

    log_in(page, url)
    page.goto(f"{url}/ui/jobs/{job_id}")
    row = page.locator("#tasks-table tbody tr").first
    expect(row.locator(".status")).to_have_text(re.compile("running"), timeout=60_000)
    row.locator("button[data-log=stdout]").click()
    expect(page.locator("#log")).to_have_text("line 0\n")
    expect(page.locator("#log-state")).to_have_text("running: following its output live")
    navigations = len(web.navigations)

    (gates / "go0").touch()  # the next line appears by itself
    expect(page.locator("#log")).to_have_text("line 0\nline 1\n")
    expect(page.locator("#log-state")).to_have_text(re.compile("^running"))
    web.shot("11-live-log")
    (gates / "go1").touch()
    (gates / "go2").touch()
    expect(page.locator("#log")).to_have_text("line 0\nline 1\nline 2\ndone\n", timeout=60_000)
    expect(page.locator("#log-state")).to_have_text("ended (done)", timeout=60_000)
    memory = page.locator("#usage-chart svg[data-chart^='memory:']")
    expect(memory.locator("polyline")).to_have_count(1)
    assert int(memory.get_attribute("data-points")) >= 3
    page.locator("#log-panel").scroll_into_view_if_needed()
    web.shot("12-task-usage")
    assert len(web.navigations) == navigations, "the job page reloaded"
    assert web.errors == []
    publish_screenshots(web.shots)
