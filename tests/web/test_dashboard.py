"""The dashboard in a real browser: a user registers, submits a two-stage job with upload progress,
watches it run and finish without reloading, reads a log, downloads the result, sees the bill and
pays it; the contributor then sees their workers and the (now paid) earnings."""

import re
from pathlib import Path

import httpx
from pages import log_in
from playwright.sync_api import expect

from localnet import EMAIL, PASSWORD

PRODUCE = """import json, time
time.sleep(2.5)  # long enough for the page to show it running
json.dump(list(range(1, 101)), open("numbers.json", "w"))
print("produced 100 numbers")
"""
TOTAL = """import json
numbers = json.load(open("numbers.json"))
open("total.txt", "w").write(f"{sum(numbers)}\\n")
"""
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEC = """name = "sum-of-numbers"
[[tasks]]
name = "produce"
script = "produce.py"
inputs = { "pad.bin" = "pad.bin" }
outputs = ["numbers.json"]
memory = "64MiB"
[[tasks]]
name = "total"
script = "total.py"
inputs = { "numbers.json" = "task:produce/numbers.json" }
outputs = ["total.txt"]
memory = "64MiB"
"""


def api_token(page) -> dict:
    token = page.evaluate("localStorage.getItem('runsurge.access')")
    return {"authorization": f"Bearer {token}"}


def test_register_submit_watch_download_pay_and_earn(net, web, tmp_path, publish_screenshots):
    page, url = web.page, net.url
    for name, text in (("produce.py", PRODUCE), ("total.py", TOTAL), ("job.toml", SPEC)):
        (tmp_path / name).write_text(text)
    (tmp_path / "pad.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB: an upload worth a progress bar

    # A visitor is sent to the login page, and registers.
    page.goto(f"{url}/ui/")
    page.wait_for_url(re.compile(r".*/ui/login\?next=.*"))
    page.fill("#register-form input[name=email]", "alice@example.org")
    page.fill("#register-form input[name=password]", "alice-password")
    web.shot("01-login-register")
    page.click("#register-form button")
    page.wait_for_url(f"{url}/ui/")
    expect(page.locator("#who")).to_have_text("alice@example.org")
    expect(page.locator("#no-jobs")).to_be_visible()

    # Submit a job spec and its scripts; the upload shows its progress, then the job page opens.
    page.check("input[name=mode][value=spec]")
    page.set_input_files("#spec-file", str(tmp_path / "job.toml"))
    page.set_input_files("#files", [str(tmp_path / n) for n in ("produce.py", "total.py", "pad.bin")])
    web.shot("02-submit-job")
    cdp = web.context.new_cdp_session(page)  # a slow uplink (256 KiB/s), so the upload takes a while
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": 256 * 1024})
    page.click("#submit-button")
    expect(page.locator("#upload-progress")).to_be_visible()
    expect(page.locator("#upload-status")).to_have_text(re.compile(r"uploading [\d.]+ (KiB|MiB) of 1\.0 MiB"))
    expect(page.locator("#upload-status")).to_have_text(re.compile(r"uploading [2-9]\d\d KiB"))  # it advances
    expect(page.locator("#submit-button")).to_be_disabled()
    web.shot("02b-uploading")
    page.wait_for_url(re.compile(rf"{re.escape(url)}/ui/jobs/[0-9a-f]{{32}}$"))
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    job_id = page.url.rsplit("/", 1)[1]
    navigations = len(web.navigations)

    # The graph has both tasks and the edge between them; statuses change live, without a reload.
    expect(page.locator("#graph svg g.node")).to_have_count(2)
    expect(page.locator("#graph svg path.edge")).to_have_count(1)
    expect(page.locator("#graph g.node[data-task=produce]")).to_have_class(re.compile(r"st-running"))
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#tasks-table tr[data-task=total] .status")).to_have_text(re.compile("pending|ready"))
    web.shot("03-job-running")
    expect(page.locator("#job-status")).to_have_text("done", timeout=60_000)
    expect(page.locator("#graph g.node.st-done")).to_have_count(2)
    expect(page.locator("#job-progress")).to_have_text("2 of 2 tasks done")
    assert len(web.navigations) == navigations, "the job page reloaded"

    # Per-task worker, time and memory; the log of a task.
    row = page.locator("#tasks-table tr[data-task=produce]")
    expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^[0-9a-f]{8}$"))
    expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^[2-9]\.\d\d s$"))  # slept 2.5 s
    expect(row.locator("td").nth(6)).to_have_text(re.compile(r"MiB / .*MiB"))
    row.locator("button[data-log=stdout]").click()
    expect(page.locator("#log")).to_have_text("produced 100 numbers\n")
    expect(page.locator("#log-state")).to_have_text("ended (done)")
    # Its CPU and memory over the run: one chart each, drawn from the worker's samples.
    for name in ("CPU cores: produce", "memory: produce"):
        chart = page.locator(f"#usage-chart svg[data-chart='{name}']")
        expect(chart.locator("polyline")).to_have_count(1)
        assert int(chart.get_attribute("data-points")) >= 2

    # Download the result.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download total.txt").click()
    saved = tmp_path / "downloaded-total.txt"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "total.txt"
    assert saved.read_text() == "5050\n"
    web.shot("04-job-done")

    # The bill: one line per task, as the API says; pay it.
    bill = httpx.get(f"{url}/api/jobs/{job_id}/bill", headers=api_token(page)).json()
    producer = httpx.get(f"{url}/api/jobs/{job_id}", headers=api_token(page)).json()["tasks"][0]["worker_id"]
    assert len(bill["lines"]) == 2 and bill["total"] > 0 and bill["due"] == bill["total"]
    expect(page.locator("#bill-table tbody tr")).to_have_count(2)
    expect(page.locator("#bill-total")).to_have_text(bill["total_credits"])
    expect(page.locator("#bill-table tbody .badge.st-due")).to_have_count(2)
    pay = page.locator("#pay-button")
    expect(pay).to_have_text(f"Pay {bill['due_credits']} credits")
    pay.click()
    expect(page.locator("#flash")).to_have_text(f"Paid {bill['total_credits']} credits.")
    expect(pay).to_have_text("Paid")
    expect(pay).to_be_disabled()
    expect(page.locator("#bill-due")).to_have_text("0.000000")
    expect(page.locator("#bill-table tbody .badge.st-paid")).to_have_count(2)
    web.shot("05-bill-paid")
    assert httpx.post(f"{url}/api/jobs/{job_id}/pay", headers=api_token(page)).status_code == 409

    page.goto(f"{url}/ui/")
    expect(page.locator(f"#jobs-table tr[data-job='{job_id}'] .badge")).to_have_text("done")
    web.shot("06-jobs")

    # The contributor (the LocalNet workers' account) sees the workers and the paid earnings.
    page.click("#logout")
    page.wait_for_url(f"{url}/ui/login")
    log_in(page, url, EMAIL, PASSWORD)
    page.click("nav a[data-nav=workers]")
    rows = page.locator("#workers-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#workers-table .badge.st-online")).to_have_count(2)
    done = sum(int(rows.nth(i).locator("td").nth(7).inner_text()) for i in range(2))
    assert done == 2
    # Per worker, CPU and memory over its tasks' runs: the one that ran `produce` (2.5 s) has a line.
    expect(page.locator("#worker-usage [data-worker-usage]")).to_have_count(2)
    expect(page.locator(f"[data-worker-usage='{producer}'] svg[data-chart^='memory:'] polyline")).to_have_count(1)
    web.shot("07-workers")
    page.click("nav a[data-nav=earnings]")
    earned = httpx.get(f"{url}/api/earnings", headers=api_token(page)).json()
    assert earned["pending"] == 0 and 0 < earned["paid"] <= bill["total"]
    assert earned["paid"] == sum(line["amount"] - line["amount"] * 10 // 100 for line in bill["lines"])
    expect(page.locator("#earn-paid")).to_have_text(earned["paid_credits"])
    expect(page.locator("#earn-pending")).to_have_text("0.000000")
    expect(page.locator("#earn-tasks tbody tr")).to_have_count(2)
    expect(page.locator("#earn-tasks tbody .badge.st-paid")).to_have_count(2)
    expect(page.locator("#earn-chart svg[data-chart='credits earned'][data-points='2'] polyline")).to_have_count(1)
    web.shot("08-earnings")

    assert web.errors == []
    publish_screenshots(web.shots)


def test_logins_fail_politely_and_other_people_s_jobs_stay_hidden(net, web):
    page, url = web.page, net.url
    page.goto(f"{url}/ui/login")
    page.fill("#login-form input[name=email]", "nobody@example.org")
    page.fill("#login-form input[name=password]", "wrong-password")
    page.click("#login-form button")
    expect(page.locator("#flash")).to_have_text("wrong email or password")
    expect(page.locator("#flash")).to_have_class(re.compile("error"))
    # The LocalNet account owns a job; a new user opening its page sees no such job.
    client = net.client()
    job_id = client.submit_spec(EXAMPLES / "wordcount" / "job.toml")["id"]
    page.fill("#register-form input[name=email]", "mallory@example.org")
    page.fill("#register-form input[name=password]", "mallory-password")
    page.click("#register-form button")
    page.wait_for_url(f"{url}/ui/")
    page.goto(f"{url}/ui/jobs/{job_id}")
    expect(page.locator("#job-name")).to_have_text("No such job")
    expect(page.locator("#bill-table tbody tr")).to_have_count(0)
    # Expired or forged credentials send the user back to the login page.
    page.evaluate("localStorage.setItem('runsurge.access', 'forged'); localStorage.setItem('runsurge.refresh', 'x')")
    page.goto(f"{url}/ui/workers")
    page.wait_for_url(re.compile(r".*/ui/login\?next=%2Fui%2Fworkers$"))
    errors = [e for e in web.errors if "status of 40" not in e]  # the refused requests themselves
    assert errors == []
