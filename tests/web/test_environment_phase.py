"""The job page shows a job's environment (its id and requirements) and each task's phase, here
"building environment" while a worker builds it (held by the worker's test hook, so it is seen)."""

import pytest
from pages import log_in
from playwright.sync_api import expect
from wheels import make_wheel

from localnet import LocalNet


@pytest.fixture
def envnet1(tmp_path):
    make_wheel(tmp_path / "src", tmp_path / "house", "tinypkg", "1.0")
    gate = tmp_path / "hold-builds"
    n = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5,
                 extra_env={"RUNSURGE_WHEELHOUSE_DIR": str(tmp_path / "house"), "RUNSURGE_PACKAGE_INDEX_URL": "",
                            "RUNSURGE_TEST_HOLD_ENV_BUILD": str(gate)})
    try:
        n.start(workers=1)
        yield n, gate
    finally:
        n.stop()


def test_the_job_page_shows_the_environment_and_the_building_phase(envnet1, web, tmp_path, publish_screenshots):
    net, gate = envnet1
    page, url = web.page, net.url
    (tmp_path / "job.py").write_text("import tinypkg\nopen('out.txt', 'w').write(tinypkg.VALUE)\n")
    gate.touch()
    job_id = net.client().submit([tmp_path / "job.py"], mode="single", requirements="tinypkg==1.0\n")["id"]

    log_in(page, url)
    page.goto(f"{url}/ui/jobs/{job_id}")
    env_id = net.client().job(job_id)["tasks"][0]["environment"]["id"]
    expect(page.locator("#job-environment-box")).to_be_visible()
    expect(page.locator("#job-environment li")).to_have_text(f"{env_id[:12]}: tinypkg==1.0")
    expect(page.locator("#tasks-table .status .env")).to_have_text(f"env {env_id[:12]}")
    expect(page.locator("#tasks-table .status .waiting")).to_contain_text("building environment")
    expect(page.locator("#job-waiting li")).to_contain_text("building environment")
    web.shot("14-job-building-environment")

    gate.unlink()
    expect(page.locator("#job-status")).to_have_text("done", timeout=60_000)
    expect(page.locator("#tasks-table .status .waiting")).to_have_count(0)
    expect(page.locator("#tasks-table .status .phase")).to_have_count(0)
    expect(page.locator("#job-environment li")).to_have_text(f"{env_id[:12]}: tinypkg==1.0")  # still said
    assert not web.errors, web.errors
    publish_screenshots(web.shots)
