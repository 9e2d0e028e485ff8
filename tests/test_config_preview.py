"""`[admin] preview_token` and the meta sink's `preview_test_event_code` through the
typed reader, and what `check`'s summary shows of them."""

from __future__ import annotations

import pytest

from proxy.config.errors import ConfigErrors
from proxy.config.load import load_config_text
from proxy.config.summary import summary

HEAD = '[proxy]\nupstream = "https://ats.example"\n'
META = """
[sinks.meta]
type = "meta"
pixel_id = "123"
access_token = "t"
"""


def load(text: str, env: dict[str, str] | None = None):
    return load_config_text(HEAD + text, "rules.toml", env or {})


def test_the_preview_token_is_read_from_the_environment() -> None:
    c = load('[admin]\npreview_token = "${PREVIEW}"\n', {"PREVIEW": "s3cret"})
    assert c.admin.preview_token == "s3cret"
    assert load("").admin.preview_token is None
    text = summary(c)
    assert "preview link /_edge/preview" in text and "s3cret" not in text


@pytest.mark.parametrize("value, message", [('""', "empty"), ("1", "string")])
def test_a_bad_preview_token_is_an_error_with_its_key(value: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as exc:
        load(f"[admin]\npreview_token = {value}\n")
    (err,) = exc.value.errors
    assert err.key == "admin.preview_token" and message in err.message


def test_meta_takes_a_preview_test_event_code_and_others_do_not() -> None:
    c = load(META + 'preview_test_event_code = "TEST123"\n')
    assert c.sinks["meta"].preview_test_event_code == "TEST123"
    assert "(preview visitors: test events)" in summary(c)
    with pytest.raises(ConfigErrors) as exc:
        load('[sinks.hook]\ntype = "webhook"\nurl = "https://h.example"\nsecret = "s"\n'
             'preview_test_event_code = "X"\n')
    assert any(e.key == "sinks.hook.preview_test_event_code" for e in exc.value.errors)
