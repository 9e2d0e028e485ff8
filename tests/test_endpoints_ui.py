"""The UI's pure parts: which admin paths are its open shell, what it ships, and
where `check` says it is."""

from __future__ import annotations

import pytest

from proxy.config.load import load_config_text
from proxy.config.summary import summary
from proxy.endpoints.ui import TYPES, is_shell, load_assets

HEAD = '[proxy]\nupstream = "https://ats.example"\nprefix = "/ops"\n'


@pytest.mark.parametrize(("sub", "shell"), [
    ("/ui", True), ("/ui/", True), ("/ui/main.js", True),
    ("/uix", False), ("/ui-api", False), ("/api/events", False), ("/metrics", False),
    ("/UI/", False), ("", False), ("/", False),
])
def test_only_the_ui_subtree_is_the_open_shell(sub: str, shell: bool) -> None:
    assert is_shell(sub) is shell


def test_the_package_ships_the_page_and_nothing_but_static_types() -> None:
    assets = load_assets()
    assert assets[""] is assets["index.html"]
    assert {"index.html", "ui.css", "main.js", "api.js", "icon.svg"} <= set(assets)
    assert all("." + name.rpartition(".")[2] in TYPES for name in assets if name)
    assert not any(name.endswith(".py") for name in assets)
    assert len({a.etag for name, a in assets.items() if name}) == len(assets) - 1
    for name, asset in assets.items():
        text = asset.body.decode()
        # Offline: nothing is fetched from another origin.
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), name
        assert "https://" not in text and "//cdn" not in text, name
        if name.endswith(".js"):
            assert "innerHTML" not in text and "insertAdjacentHTML" not in text, name
            assert "eval(" not in text and "document.write" not in text, name


def test_check_shows_where_the_ui_is() -> None:
    on = summary(load_config_text(HEAD + '[admin]\nlisten = "127.0.0.1:9555"\n', "r", {}))
    assert "http://127.0.0.1:9555/ops/ui/" in on
    off = summary(load_config_text(HEAD + '[admin]\nlisten = "off"\n', "r", {}))
    assert "/ui/" not in off and "no admin listener" in off
