"""Item 4: nobody can lock an account out, or squat on it with a look-alike. Ten wrong passwords from
one address slow that address only: the owner's correct password from another address works, and a
worker whose own address is throttled waits and retries instead of exiting. Sign-ups are limited per
address; look-alike and invisible-character emails and weak passwords are refused with the reason."""

import re
import signal

import httpx
from hostile import VICTIM, db_rows

from localnet import PASSWORD


def http_from(address: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.0.0.0/8 address is ours)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def login(client, net, email, password):
    return client.post(f"{net.url}/api/auth/login", json={"email": email, "password": password})


def register(client, net, email, password):
    return client.post(f"{net.url}/api/auth/register", json={"email": email, "password": password})


def test_guessing_never_locks_the_owner_out(bare):
    victim_row = db_rows(bare, "select * from users where email = ?", VICTIM)
    with http_from("127.0.0.2") as attacker, http_from("127.0.0.3") as owner:
        for _ in range(10):
            assert login(attacker, bare, VICTIM, "not-the-password").status_code == 401
        r = login(attacker, bare, VICTIM, PASSWORD)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # the guessing address waits
        assert login(owner, bare, VICTIM, PASSWORD).status_code == 200  # the owner, elsewhere, does not
    assert db_rows(bare, "select * from users where email = ?", VICTIM) == victim_row


def test_a_worker_whose_address_is_throttled_waits_and_retries(bare):
    with http_from("127.0.0.1") as guesser:  # the workers' own address
        for _ in range(10):
            login(guesser, bare, VICTIM, "not-the-password")
    bare.start_worker(0, wait=False)
    bare._until(lambda: "throttled" in bare.log("worker0"), "the worker to meet the throttle")
    assert bare.workers[0].poll() is None, bare.log("worker0")  # still there, waiting its turn
    assert "retrying in" in bare.log("worker0")


def test_a_worker_re_registering_from_a_throttled_address_waits_as_long_as_the_master_asks(bare):
    """Declared offline (it was stopped a while), the worker must log in again to re-register, and its
    address is throttled meanwhile: it waits the master's Retry-After (and a jitter), not a heartbeat."""
    bare.start_worker(0)
    worker = bare.workers[0]
    worker.send_signal(signal.SIGSTOP)
    try:
        bare._until(lambda: not any(w["online"] for w in bare.client().workers()), "the worker offline")
        with http_from("127.0.0.1") as guesser:  # the worker's own address
            for _ in range(11):
                r = login(guesser, bare, VICTIM, "not-the-password")
        asked = int(r.headers["retry-after"])
        assert r.status_code == 429 and asked > 0
    finally:
        worker.send_signal(signal.SIGCONT)
    bare._until(lambda: "the master throttles our logins" in bare.log("worker0"), "the worker to meet the throttle")
    waits = [float(m) for m in re.findall(r"the master throttles our logins: registering again in ([\d.]+) s",
                                          bare.log("worker0"))]
    assert waits and all(w >= asked - 1 for w in waits), (waits, asked)  # (the master's clock ran on meanwhile)
    assert worker.poll() is None


def test_sign_up_is_rate_limited_and_refuses_look_alikes_and_weak_passwords(bare):
    users = db_rows(bare, "select * from users order by id")
    with http_from("127.0.0.4") as c:
        r = register(c, bare, "\uff36ictim@RUNSURGE.local", "a-good-long-password")  # fullwidth V, capitals
        assert r.status_code == 409
        r = register(c, bare, "vic\u200btim@runsurge.local", "a-good-long-password")  # a zero-width space
        assert r.status_code == 400 and "invisible" in r.json()["detail"]
        r = register(c, bare, "new@runsurge.local", "short-1")
        assert r.status_code == 400 and "at least 10" in r.json()["detail"]
        r = register(c, bare, "new@runsurge.local", "password123")
        assert r.status_code == 400 and "too common" in r.json()["detail"]
        assert db_rows(bare, "select * from users order by id") == users  # nothing was created
        for i in range(16):  # 20 attempts an hour from one address (these 4 counted)
            assert register(c, bare, f"bulk{i}@runsurge.local", "x").status_code == 400
        r = register(c, bare, "late@runsurge.local", "a-good-long-password")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    with http_from("127.0.0.5") as other:
        assert register(other, bare, "late@runsurge.local", "a-good-long-password").status_code == 201
