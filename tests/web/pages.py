"""Steps the browser tests share."""

from localnet import EMAIL, PASSWORD


def log_in(page, url: str, email: str = EMAIL, password: str = PASSWORD) -> None:
    page.goto(f"{url}/ui/login")
    page.fill("#login-form input[name=email]", email)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form button")
    page.wait_for_url(f"{url}/ui/")
