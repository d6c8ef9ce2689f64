"""The dashboard in a real browser: why tasks wait (the job's summary and each task's reason), the
timeline, cancelling a running job, deleting it with its data, the pages for a job that is gone, the
job list's cost, duration and pages, and the plan preview before submitting."""

import re
import time
from pathlib import Path

from pages import log_in
from playwright.sync_api import expect

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SPEC = """name = "waits"
""" + "".join(f"""
[[tasks]]
name = "hold{i}"
script = "hold.py"
memory = "64MiB"
""" for i in (1, 2, 3))  # two workers of one slot each: the third task queues on one of them


def test_waiting_reasons_cancel_and_delete(net, web, tmp_path, publish_screenshots):
    page, url = web.page, net.url
    (tmp_path / "hold.py").write_text("import time\ntime.sleep(600)\n")
    (tmp_path / "job.toml").write_text(SPEC)
    client = net.client()
    job_id = client.submit_spec(tmp_path / "job.toml")["id"]

    log_in(page, url)
    page.goto(f"{url}/ui/jobs/{job_id[:8]}")  # a prefix of the id will do
    expect(page.locator("#job-name")).to_have_text("waits")
    expect(page.locator("#job-waiting")).to_be_visible()
    expect(page.locator("#job-waiting li")).to_have_text(re.compile(
        r"^1 task\(s\): assigned to worker [0-9a-f]{8}: "  # its phase, once its worker's heartbeat named it
        r"(waiting for a free slot|waiting there for a free slot or its inputs)$"))
    badges = page.locator("#tasks-table .status .badge")
    expect(badges.filter(has_text="running")).to_have_count(2)
    expect(badges.filter(has_text="assigned")).to_have_count(1)  # the queued one, and only it says why
    expect(page.locator("#tasks-table .waiting")).to_have_count(1)
    expect(page.locator("#tasks-table tr:has(.st-assigned) .waiting")).to_contain_text("assigned to worker")
    expect(page.locator("#delete-button")).to_be_hidden()
    expect(page.locator("#timeline .bar.st-running")).to_have_count(2)  # one lane per worker, a bar per run
    expect(page.locator("#timeline .lane")).to_have_count(2)
    web.shot("09-job-waiting")

    page.click("#cancel-button")
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(page.locator("#tasks-table .status .badge")).to_have_text(["cancelled"] * 3)
    expect(page.locator("#job-waiting")).to_be_hidden()
    expect(page.locator("#cancel-button")).to_be_hidden()
    expect(page.locator("#delete-button")).to_be_visible()
    expect(page.locator("#timeline .bar.st-cancelled")).to_have_count(2)  # the stopped runs; the queued one never ran
    expect(page.locator("#graph-legend")).to_contain_text("ready, not placed")
    fits = page.evaluate("(() => { const g = document.getElementById('graph');"
                         " return g.querySelector('svg').getBoundingClientRect().width <= g.clientWidth; })()")
    assert fits
    web.shot("10-job-cancelled")

    # The job list: its duration and its cost (the stopped runs, once billed), page by page.
    deadline = time.monotonic() + 30
    while not client.jobs()[0]["cost"]:
        assert time.monotonic() < deadline, "the stopped runs were never billed"
        time.sleep(0.2)
    cost = client.jobs()[0]["cost"]
    page.goto(f"{url}/ui/")
    row = page.locator(f"#jobs-table tr[data-job='{job_id}']")
    expect(row.locator(".cost")).to_have_text(f"{cost // 10**6}.{cost % 10**6:06d}")
    expect(row.locator(".duration")).to_have_text(re.compile(r"^\d+(\.\d+)? s$"))
    expect(page.locator("#older")).to_be_hidden()
    second = client.submit_spec(tmp_path / "job.toml")["id"]
    assert [j["id"] for j in client._json("GET", "/api/jobs?limit=1")] == [second]
    assert [j["id"] for j in client._json("GET", "/api/jobs?limit=1&offset=1")] == [job_id]
    client.cancel(second)
    assert web.errors == []
    page.goto(f"{url}/ui/jobs/{job_id}")

    page.once("dialog", lambda d: d.accept())
    page.click("#delete-button")
    page.wait_for_url(f"{url}/ui/")
    assert job_id not in [j["id"] for j in client.jobs()]
    page.goto(f"{url}/ui/jobs/{job_id}")
    expect(page.locator("#job-name")).to_have_text("No such job")
    expect(page.locator("#bill-card")).to_be_hidden()
    resp = page.goto(f"{url}/ui/jobs/not-a-job")  # a page, not the API's JSON
    assert resp.status == 404
    expect(page.locator("#not-found h1")).to_have_text("Job not found")
    assert [e for e in web.errors if "status of 404" not in e] == []  # the refused requests themselves
    publish_screenshots(web.shots)


def test_plan_preview_before_submitting(net, web):
    page, url = web.page, net.url
    files = [EXAMPLES / "auto" / "zscore.py", EXAMPLES / "auto" / "measurements.csv"]
    expected = net.client().plan(files, script="zscore.py")
    log_in(page, url)
    page.set_input_files("#files", [str(f) for f in files])
    page.select_option("#script", "zscore.py")
    page.click("#plan-button")
    expect(page.locator("#plan-preview h3")).to_have_text(f"Plan: {len(expected['tasks'])} task(s), mode auto")
    expect(page.locator("#plan-preview tbody tr")).to_have_count(len(expected["tasks"]))
    expect(page.locator("#plan-preview li").first).to_have_text(expected["explanation"][0])
    assert net.client().jobs() == []  # a preview submits nothing
    page.set_input_files("#files", [str(EXAMPLES / "auto" / "measurements.csv")])  # no script: refused politely
    page.click("#plan-button")
    expect(page.locator("#flash")).to_have_class(re.compile("error"))
    expect(page.locator("#plan-preview")).to_be_hidden()
    assert [e for e in web.errors if "status of 400" not in e] == []
