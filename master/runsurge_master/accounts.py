"""The rules for accounts, in one place for sign-up, login and `runsurge-master create-user`.

Emails are compared in one normal form (NFKC, then casefold), so look-alikes ("Ａlice@x.org",
"ALICE@X.ORG") cannot register twice; control, format (zero-width) and separator characters are
refused outright. Passwords need MIN_PASSWORD characters and must not be on a list of 30 000 common
passwords (zxcvbn's, as NIST SP 800-63B asks).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

MIN_PASSWORD = 10


class AccountError(ValueError):
    """An email or password the rules refuse; the message says why."""


def normalize_email(email: str) -> str:
    """The form an email is stored and looked up in; raises AccountError for one no person would type."""
    if any(unicodedata.category(c)[0] in "CZ" for c in email):  # control, format (zero-width), spaces
        raise AccountError("the email holds invisible or control characters")
    email = unicodedata.normalize("NFKC", email).casefold()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain.strip(".") or len(email) > 254:
        raise AccountError("that is not an email address")
    return email


def lookup_email(email: str) -> str:
    """normalize_email for a login: a malformed email simply matches no account."""
    try:
        return normalize_email(email)
    except AccountError:
        return ""


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS
    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password(password: str, email: str = "") -> None:
    """Raises AccountError with the reason a password is refused."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    folded = password.casefold()
    if folded in _common() or len(set(folded)) < 3:
        raise AccountError("that password is too common: choose another")
    if email and folded in (email.casefold(), email.partition("@")[0].casefold()):
        raise AccountError("the password must not be the email")
