"""/docs works without internet: Swagger UI's assets come from the master (every request elsewhere is
refused here, as on a machine offline), and the schema documents errors and the submission modes."""

import httpx
from playwright.sync_api import expect


def test_docs_render_offline_with_every_asset_from_the_master(net, web):
    page, url = web.page, net.url
    elsewhere: list[str] = []

    def only_the_master(route) -> None:
        if route.request.url.startswith(url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_master)
    page.goto(f"{url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("RunSurge master")
    expect(page.locator(".opblock-summary-path[data-path='/api/jobs/{job_id}/cancel']")).to_be_visible()
    assert elsewhere == [] and web.errors == []

    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    cancel = schema["paths"]["/api/jobs/{job_id}/cancel"]["post"]["responses"]
    assert {"401", "404", "409"} <= set(cancel)
    submit = schema["paths"]["/api/jobs"]["post"]
    assert {"401", "413"} <= set(submit["responses"])
    form = schema["components"]["schemas"][submit["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
                                            .rsplit("/", 1)[1]]
    assert form["properties"]["mode"]["enum"] == ["spec", "auto", "single", "group"]
    assert "429" in schema["paths"]["/api/auth/login"]["post"]["responses"]
    assert "401" not in schema["paths"]["/api/health"]["get"]["responses"]
