"""A live log read ends on a whole UTF-8 character: a cut one is held back for the next read."""

import pytest

from runsurge_master.task_logs import _whole_utf8


@pytest.mark.parametrize("text", ["", "plain", "é", "line é\n", "€uro", "a😀", "日本語"])
def test_every_cut_of_a_text_keeps_only_whole_characters(text):
    data = text.encode()
    for cut in range(len(data) + 1):
        part = data[:cut]
        kept = part[:_whole_utf8(part)]
        kept.decode("utf-8")  # never a broken character
        assert data.startswith(kept) and len(part) - len(kept) < 4
        assert text.startswith(kept.decode())
    assert _whole_utf8(data) == len(data)
